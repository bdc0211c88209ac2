// How messages are laid out: grouped by author, split by day, with local times.
import type { ChatMessage } from '../../server/chat/protocol';

/** Consecutive messages of one author this close together share one header. */
const GROUP_GAP_MS = 5 * 60 * 1000;

export interface MessageGroup {
  key: string;
  day: string | null;
  author: ChatMessage['user'];
  messages: ChatMessage[];
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });

export const formatTime = (ts: number) => timeFormat.format(ts);
export const formatFull = (ts: number) => fullFormat.format(ts);

export function dayLabel(ts: number, now = Date.now()): string {
  const day = new Date(ts).toDateString();
  if (day === new Date(now).toDateString()) return 'Today';
  if (day === new Date(now - 86_400_000).toDateString()) return 'Yesterday';
  return dayFormat.format(ts);
}

export function groupMessages(messages: readonly ChatMessage[], now = Date.now()): MessageGroup[] {
  const groups: MessageGroup[] = [];
  let current: MessageGroup | undefined;
  let currentDay: string | undefined;
  for (const message of messages) {
    const day = dayLabel(message.ts, now);
    const newDay = day !== currentDay;
    const last = current?.messages.at(-1);
    if (!current || !last || newDay || last.user.id !== message.user.id || message.ts - last.ts > GROUP_GAP_MS) {
      current = { key: message.id, day: newDay ? day : null, author: message.user, messages: [] };
      groups.push(current);
    }
    current.messages.push(message);
    currentDay = day;
  }
  return groups;
}

export function typingText(names: readonly string[]): string {
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return 'Several people are typing…';
}
