// The WebSocket contract (../shared/spec/protocol.md): frame types, limits and the validation of
// client frames. Shared with the client, so it must stay free of Node.js imports.

export interface User {
  id: string;
  name: string;
}

export interface ChatMessage {
  id: string;
  ts: number;
  user: User;
  text: string;
  clientId: string;
}

export type ErrorCode =
  | 'bad_request'
  | 'invalid_room'
  | 'not_joined'
  | 'too_long'
  | 'limit_exceeded'
  | 'rate_limited'
  | 'unavailable';

export interface FrameRef {
  type: string;
  room?: string;
  clientId?: string;
}

// Client → server
export type JoinFrame = { type: 'join'; room: string; since?: string };
export type LeaveFrame = { type: 'leave'; room: string };
export type SendFrame = { type: 'send'; room: string; text: string; clientId: string };
export type HistoryFrame = { type: 'history'; room: string; before?: string; limit: number };
export type TypingFrame = { type: 'typing'; room: string };
export type ClientFrame = JoinFrame | LeaveFrame | SendFrame | HistoryFrame | TypingFrame;

// Server → client
export type WelcomeFrame = { type: 'welcome'; user: User; replica: string };
export type JoinedFrame = {
  type: 'joined';
  room: string;
  messages: ChatMessage[];
  users: User[];
  resumed: boolean;
};
export type MessageFrame = { type: 'message'; room: string } & ChatMessage;
export type AckFrame = { type: 'ack'; room: string; clientId: string; id: string };
export type HistoryResultFrame = {
  type: 'history';
  room: string;
  messages: ChatMessage[];
  hasMore: boolean;
};
export type PresenceFrame = { type: 'presence'; room: string; joined: User[]; left: User[] };
export type TypingNoticeFrame = { type: 'typing'; room: string; user: User };
export type LeftFrame = { type: 'left'; room: string };
export type ErrorFrame = {
  type: 'error';
  code: ErrorCode;
  message: string;
  ref: FrameRef;
  retryAfterMs?: number;
};
export type ServerFrame =
  | WelcomeFrame
  | JoinedFrame
  | MessageFrame
  | AckFrame
  | HistoryResultFrame
  | PresenceFrame
  | TypingNoticeFrame
  | LeftFrame
  | ErrorFrame;

export const LIMITS = {
  maxFrameBytes: 16 * 1024,
  maxRoomsPerSocket: 50,
  joinMessages: 50,
  historyDefault: 50,
  historyMax: 100,
  dedupeWindowMs: 10 * 60 * 1000,
  typingIntervalMs: 2000,
} as const;

export const CLOSE = {
  normal: 1000,
  binary: 1003,
  policy: 1008,
  tooLarge: 1009,
  restarting: 1012,
  tooSlow: 1013,
} as const;

export const ROOM_PATTERN = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const CLIENT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const MESSAGE_ID_PATTERN = /^(\d{1,15})-(\d{1,15})$/;

export function isRoomName(value: unknown): value is string {
  return typeof value === 'string' && ROOM_PATTERN.test(value);
}

export function isMessageId(value: unknown): value is string {
  return typeof value === 'string' && MESSAGE_ID_PATTERN.test(value);
}

/** Orders `<ms>-<seq>` ids numerically; both must be valid ids. */
export function compareIds(a: string, b: string): number {
  const dashA = a.indexOf('-');
  const dashB = b.indexOf('-');
  const msA = Number(a.slice(0, dashA));
  const msB = Number(b.slice(0, dashB));
  if (msA !== msB) return msA < msB ? -1 : 1;
  const seqA = Number(a.slice(dashA + 1));
  const seqB = Number(b.slice(dashB + 1));
  return seqA === seqB ? 0 : seqA < seqB ? -1 : 1;
}

/** Code points, not UTF-16 units: an emoji counts once. */
export function codePointLength(text: string): number {
  let length = 0;
  for (const _ of text) length++;
  return length;
}

export type ParseResult =
  | { ok: true; frame: ClientFrame }
  | { ok: false; code: ErrorCode; message: string; ref: FrameRef };

/**
 * Turns one text frame into a validated client frame, or the error to answer with. Never throws:
 * any JSON at all, including hostile shapes, ends in one of the two results.
 */
export function parseClientFrame(text: string, maxMessageLength: number): ParseResult {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return fail('bad_request', 'frame is not valid JSON', { type: 'unknown' });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return fail('bad_request', 'frame must be a JSON object', { type: 'unknown' });
  }
  const raw = data as Record<string, unknown>;
  const ref = refOf(raw);

  switch (raw.type) {
    case 'join': {
      const room = checkRoom(raw, ref);
      if (typeof room !== 'string') return room;
      if (raw.since === undefined) return { ok: true, frame: { type: 'join', room } };
      if (!isMessageId(raw.since)) return fail('bad_request', 'since must be a message id', ref);
      return { ok: true, frame: { type: 'join', room, since: raw.since } };
    }
    case 'leave':
    case 'typing': {
      const room = checkRoom(raw, ref);
      if (typeof room !== 'string') return room;
      return { ok: true, frame: { type: raw.type, room } };
    }
    case 'send': {
      const room = checkRoom(raw, ref);
      if (typeof room !== 'string') return room;
      if (typeof raw.clientId !== 'string' || !CLIENT_ID_PATTERN.test(raw.clientId)) {
        return fail('bad_request', 'clientId must be 1-64 of A-Z a-z 0-9 _ -', ref);
      }
      const text = raw.text;
      if (typeof text !== 'string') return fail('bad_request', 'text must be a string', ref);
      if (!text.isWellFormed()) return fail('bad_request', 'text is not valid Unicode', ref);
      if (text.trim() === '') return fail('bad_request', 'text must not be blank', ref);
      if (codePointLength(text) > maxMessageLength) {
        return fail('too_long', `text is longer than ${maxMessageLength} characters`, ref);
      }
      return { ok: true, frame: { type: 'send', room, text, clientId: raw.clientId } };
    }
    case 'history': {
      const room = checkRoom(raw, ref);
      if (typeof room !== 'string') return room;
      const limit = raw.limit ?? LIMITS.historyDefault;
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > LIMITS.historyMax) {
        return fail('bad_request', `limit must be an integer from 1 to ${LIMITS.historyMax}`, ref);
      }
      if (raw.before === undefined) return { ok: true, frame: { type: 'history', room, limit } };
      if (!isMessageId(raw.before)) return fail('bad_request', 'before must be a message id', ref);
      return { ok: true, frame: { type: 'history', room, before: raw.before, limit } };
    }
    default:
      return fail('bad_request', 'unknown frame type', ref);
  }
}

function checkRoom(raw: Record<string, unknown>, ref: FrameRef): string | ParseResult {
  if (isRoomName(raw.room)) return raw.room;
  return fail('invalid_room', 'room names are 1-32 of a-z 0-9 _ - and start with a letter or digit', ref);
}

function fail(code: ErrorCode, message: string, ref: FrameRef): ParseResult {
  return { ok: false, code, message, ref };
}

// Echo only short strings back, so an error frame can never be used to amplify a hostile frame.
const MAX_ECHO = 64;

function refOf(raw: Record<string, unknown>): FrameRef {
  const ref: FrameRef = { type: echo(raw.type) ?? 'unknown' };
  const room = echo(raw.room);
  if (room !== undefined) ref.room = room;
  const clientId = echo(raw.clientId);
  if (clientId !== undefined) ref.clientId = clientId;
  return ref;
}

function echo(value: unknown): string | undefined {
  return typeof value === 'string' && value.length <= MAX_ECHO && value.isWellFormed() ? value : undefined;
}
