// The conversation, newest at the bottom. It follows new messages while you are at the bottom,
// keeps your place while you read back, and loads older messages as you scroll up.
import { Fragment } from 'preact';
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { ChatMessage, User } from '../../server/chat/protocol';
import type { ChatClient, PendingMessage, RoomState } from '../lib/chat';
import { formatFull, formatTime, groupMessages } from '../lib/format';

/** Within this many pixels of the bottom counts as "at the bottom". */
const STICKY_PX = 80;
const LOAD_OLDER_PX = 150;

interface Props {
  client: ChatClient;
  room: RoomState;
  me: User;
}

export function MessageList({ client, room, me }: Props) {
  const list = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const previous = useRef<{ firstId?: string; height: number; count: number; pending: number }>({ height: 0, count: 0, pending: 0 });
  const [unseen, setUnseen] = useState(0);

  useLayoutEffect(() => {
    const el = list.current;
    if (!el) return;
    const before = previous.current;
    const firstId = room.messages[0]?.id;
    const prepended = before.firstId !== undefined && firstId !== before.firstId && room.messages.length > before.count;
    const added = room.messages.length - before.count;
    const ownNew = room.pending.length > before.pending || room.messages.at(-1)?.user.id === me.id;

    if (prepended && !atBottom.current) {
      el.scrollTop += el.scrollHeight - before.height; // keep the message you were reading in place
    } else if (atBottom.current || ownNew) {
      el.scrollTop = el.scrollHeight;
      setUnseen(0);
    } else if (added > 0) {
      setUnseen((n) => n + added);
    }
    previous.current = { firstId, height: el.scrollHeight, count: room.messages.length, pending: room.pending.length };
  }, [room.messages, room.pending]);

  function onScroll() {
    const el = list.current!;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < STICKY_PX;
    if (atBottom.current) setUnseen(0);
    if (el.scrollTop < LOAD_OLDER_PX) client.loadOlder(room.name);
  }

  const groups = groupMessages(room.messages);
  return (
    <div class="messages-wrap">
      <div ref={list} class="messages" role="log" aria-live="polite" aria-label={`Messages in #${room.name}`} tabIndex={0} onScroll={onScroll}>
        {room.hasMore ? (
          <button type="button" class="load-older" onClick={() => client.loadOlder(room.name)} disabled={room.loadingHistory}>
            {room.loadingHistory ? 'Loading…' : 'Load older messages'}
          </button>
        ) : (
          room.joined && <p class="room-start">This is the start of #{room.name}.</p>
        )}
        {groups.map((group) => (
          <Fragment key={group.key}>
            {group.day && <h3 class="day">{group.day}</h3>}
            <section class={`group ${group.author.id === me.id ? 'own' : ''}`}>
            <p class="author">
              <strong>{group.author.name}</strong>
              {group.author.id === me.id && <span class="you"> (you)</span>}{' '}
              <time dateTime={new Date(group.messages[0]!.ts).toISOString()} title={formatFull(group.messages[0]!.ts)}>
                {formatTime(group.messages[0]!.ts)}
              </time>
            </p>
            {group.messages.map((message) => (
              <Message key={message.id} message={message} />
            ))}
            </section>
          </Fragment>
        ))}
        {room.pending.length > 0 && (
          <section class="group own pending-group">
            {room.pending.map((pending) => (
              <Pending key={pending.clientId} pending={pending} client={client} room={room.name} />
            ))}
          </section>
        )}
      </div>
      {unseen > 0 && (
        <button
          type="button"
          class="jump"
          onClick={() => {
            list.current!.scrollTop = list.current!.scrollHeight;
            setUnseen(0);
          }}
        >
          {unseen} new {unseen === 1 ? 'message' : 'messages'} ↓
        </button>
      )}
    </div>
  );
}

function Message({ message }: { message: ChatMessage }) {
  // Text only, never markup: Preact escapes it, and pre-wrap keeps the author's line breaks.
  return (
    <p class="text" title={formatFull(message.ts)} data-id={message.id}>
      {message.text}
    </p>
  );
}

function Pending({ pending, client, room }: { pending: PendingMessage; client: ChatClient; room: string }) {
  return (
    <div class={`text pending ${pending.status}`}>
      <p>{pending.text}</p>
      {pending.status === 'failed' ? (
        <p class="pending-state" role="alert">
          Not sent{pending.error ? `: ${pending.error}` : ''}.{' '}
          <button type="button" class="link-button" onClick={() => client.retry(room, pending.clientId)}>
            Retry
          </button>{' '}
          <button type="button" class="link-button" onClick={() => client.discard(room, pending.clientId)}>
            Discard
          </button>
        </p>
      ) : (
        <p class="pending-state">{pending.status === 'sent' ? 'Sent' : 'Sending…'}</p>
      )}
    </div>
  );
}
