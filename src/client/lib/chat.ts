// The client's view of the chat: rooms, messages, who is here and typing, and our own messages
// until the server has them. On every (re)connect it re-joins each room with `since`, and re-sends
// every unacknowledged message with its original clientId, so nothing is lost or doubled.
import {
  LIMITS,
  compareIds,
  isRoomName,
  type ChatMessage,
  type ErrorFrame,
  type ServerFrame,
  type User,
} from '../../server/chat/protocol';
import { ChatSocket, type ConnectionStatus } from './socket';

export type PendingStatus = 'sending' | 'sent' | 'failed';

export interface PendingMessage {
  clientId: string;
  text: string;
  status: PendingStatus;
  error?: string;
}

export interface TypingUser {
  user: User;
  until: number;
}

export interface RoomState {
  readonly name: string;
  readonly messages: readonly ChatMessage[];
  readonly pending: readonly PendingMessage[];
  readonly users: readonly User[];
  readonly typing: readonly TypingUser[];
  /** Whether the server said this socket is in the room (a `joined` since the last connect). */
  readonly joined: boolean;
  readonly hasMore: boolean;
  readonly loadingHistory: boolean;
  readonly unread: number;
}

export interface Notice {
  id: number;
  text: string;
}

export interface ChatState {
  readonly me: User;
  readonly status: ConnectionStatus;
  readonly retryAt: number | null;
  readonly replica: string | null;
  readonly rooms: readonly string[];
  readonly active: string | null;
  readonly roomStates: Readonly<Record<string, RoomState>>;
  readonly notice: Notice | null;
  /** Set when the server no longer accepts our session: the page asks for a name again. */
  readonly signedOut: boolean;
}

const TYPING_SHOWN_MS = 3500;
const ROOMS_KEY = 'chatter.rooms';
const ACTIVE_KEY = 'chatter.active';
/** A message not acknowledged this long after it was sent is offered for retry. */
const ACK_TIMEOUT_MS = 10_000;

function emptyRoom(name: string): RoomState {
  return { name, messages: [], pending: [], users: [], typing: [], joined: false, hasMore: false, loadingHistory: false, unread: 0 };
}

export function newClientId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Merges messages into a sorted list by id, without duplicates. */
export function mergeMessages(current: readonly ChatMessage[], incoming: readonly ChatMessage[]): ChatMessage[] {
  if (incoming.length === 0) return current as ChatMessage[];
  const last = current.at(-1);
  // The common case: everything is newer than what we have.
  if (!last || compareIds(incoming[0]!.id, last.id) > 0) return [...current, ...incoming];
  const byId = new Map(current.map((m) => [m.id, m]));
  for (const message of incoming) byId.set(message.id, message);
  return [...byId.values()].sort((a, b) => compareIds(a.id, b.id));
}

export class ChatClient {
  state: ChatState;
  private readonly listeners = new Set<() => void>();
  private readonly socket: ChatSocket;
  private readonly ackTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private noticeId = 0;
  private typingSweep: ReturnType<typeof setInterval>;

  constructor(
    me: User,
    url: string,
    private readonly storage: Pick<Storage, 'getItem' | 'setItem'> = localStorage,
  ) {
    const rooms = this.loadRooms();
    const savedActive = storage.getItem(ACTIVE_KEY);
    this.state = {
      me,
      status: 'connecting',
      retryAt: null,
      replica: null,
      rooms,
      active: savedActive && rooms.includes(savedActive) ? savedActive : (rooms[0] ?? null),
      roomStates: Object.fromEntries(rooms.map((name) => [name, emptyRoom(name)])),
      notice: null,
      signedOut: false,
    };
    this.socket = new ChatSocket(url, {
      status: (status, retryAt) => this.set({ status, retryAt }),
      frame: (frame) => this.onFrame(frame),
      closed: () => this.onClosed(),
    });
    this.typingSweep = setInterval(() => this.sweepTyping(), 1000);
  }

  start(): void {
    this.socket.connect();
  }

  stop(): void {
    clearInterval(this.typingSweep);
    for (const timer of this.ackTimers.values()) clearTimeout(timer);
    this.socket.stop();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  reconnectNow(): void {
    this.socket.reconnectNow();
  }

  /** Opens a room (joining it first if new) and shows it. Returns false for an invalid name. */
  openRoom(raw: string): boolean {
    const name = raw.trim().toLowerCase().replace(/^#/, '');
    if (!isRoomName(name)) return false;
    if (!this.state.rooms.includes(name)) {
      if (this.state.rooms.length >= LIMITS.maxRoomsPerSocket) {
        this.notify(`You can be in at most ${LIMITS.maxRoomsPerSocket} rooms at once. Leave one first.`);
        return true;
      }
      this.set({
        rooms: [...this.state.rooms, name],
        roomStates: { ...this.state.roomStates, [name]: emptyRoom(name) },
      });
      this.saveRooms();
      this.socket.send({ type: 'join', room: name });
    }
    this.showRoom(name);
    return true;
  }

  showRoom(name: string): void {
    this.set({ active: name });
    this.updateRoom(name, { unread: 0 });
    this.storage.setItem(ACTIVE_KEY, name);
  }

  leaveRoom(name: string): void {
    this.socket.send({ type: 'leave', room: name });
    const rooms = this.state.rooms.filter((room) => room !== name);
    const { [name]: _gone, ...roomStates } = this.state.roomStates;
    const active = this.state.active === name ? (rooms[0] ?? null) : this.state.active;
    this.set({ rooms, roomStates, active });
    this.saveRooms();
  }

  /** Posts to the active room. The message shows at once as "sending" until acknowledged. */
  sendMessage(text: string): void {
    const room = this.state.active;
    if (!room || text.trim() === '') return;
    const pending: PendingMessage = { clientId: newClientId(), text, status: 'sending' };
    this.updateRoom(room, (r) => ({ pending: [...r.pending, pending] }));
    this.transmit(room, pending);
  }

  retry(room: string, clientId: string): void {
    const pending = this.state.roomStates[room]?.pending.find((p) => p.clientId === clientId);
    if (!pending) return;
    this.setPending(room, clientId, { status: 'sending', error: undefined });
    this.transmit(room, { ...pending, status: 'sending' });
  }

  discard(room: string, clientId: string): void {
    this.removePending(room, clientId);
  }

  loadOlder(room: string): void {
    const state = this.state.roomStates[room];
    if (!state || !state.joined || !state.hasMore || state.loadingHistory) return;
    const before = state.messages[0]?.id;
    if (this.socket.send({ type: 'history', room, limit: LIMITS.historyDefault, ...(before ? { before } : {}) })) {
      this.updateRoom(room, { loadingHistory: true });
    }
  }

  private lastTypingSent = 0;
  typing(): void {
    const room = this.state.active;
    const now = Date.now();
    if (!room || now - this.lastTypingSent < LIMITS.typingIntervalMs) return;
    if (this.socket.send({ type: 'typing', room })) this.lastTypingSent = now;
  }

  dismissNotice(): void {
    this.set({ notice: null });
  }

  // Frames from the server.

  private onFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case 'welcome':
        this.set({ me: frame.user, replica: frame.replica });
        // Resume every room from the last message we have; the server says if it could.
        for (const room of this.state.rooms) {
          const since = this.state.roomStates[room]?.messages.at(-1)?.id;
          this.socket.send(since ? { type: 'join', room, since } : { type: 'join', room });
        }
        return;
      case 'joined': {
        const current = this.state.roomStates[frame.room];
        if (!current) return;
        const messages = frame.resumed ? mergeMessages(current.messages, frame.messages) : frame.messages;
        const delivered = new Set(messages.map((m) => m.clientId + '\n' + m.user.id));
        // What the server has is no longer ours to send; acknowledged ones it will have in history.
        const pending = current.pending.filter(
          (p) => !delivered.has(p.clientId + '\n' + this.state.me.id) && (frame.resumed || p.status !== 'sent'),
        );
        this.updateRoom(frame.room, {
          joined: true,
          messages,
          pending,
          users: frame.users,
          hasMore: frame.resumed ? current.hasMore : frame.messages.length >= LIMITS.joinMessages,
          loadingHistory: false,
        });
        for (const p of pending) if (p.status === 'sending') this.transmit(frame.room, p);
        return;
      }
      case 'message': {
        const { type: _type, room, ...message } = frame;
        const current = this.state.roomStates[room];
        if (!current) return;
        const mine = message.user.id === this.state.me.id;
        const seen = this.state.active === room && document.visibilityState === 'visible';
        this.updateRoom(room, {
          messages: mergeMessages(current.messages, [message]),
          pending: mine ? current.pending.filter((p) => p.clientId !== message.clientId) : current.pending,
          typing: current.typing.filter((t) => t.user.id !== message.user.id),
          unread: mine || seen ? current.unread : current.unread + 1,
        });
        if (mine) this.clearAckTimer(message.clientId);
        return;
      }
      case 'ack': {
        this.clearAckTimer(frame.clientId);
        const current = this.state.roomStates[frame.room];
        if (!current) return;
        if (current.messages.some((m) => m.id === frame.id)) this.removePending(frame.room, frame.clientId);
        else this.setPending(frame.room, frame.clientId, { status: 'sent' });
        return;
      }
      case 'history': {
        const current = this.state.roomStates[frame.room];
        if (!current) return;
        this.updateRoom(frame.room, {
          messages: mergeMessages(current.messages, frame.messages),
          hasMore: frame.hasMore,
          loadingHistory: false,
        });
        return;
      }
      case 'presence': {
        const current = this.state.roomStates[frame.room];
        if (!current) return;
        const gone = new Set(frame.left.map((u) => u.id));
        const users = current.users.filter((u) => !gone.has(u.id));
        for (const user of frame.joined) if (!users.some((u) => u.id === user.id)) users.push(user);
        this.updateRoom(frame.room, {
          users,
          typing: current.typing.filter((t) => !gone.has(t.user.id)),
        });
        return;
      }
      case 'typing': {
        const current = this.state.roomStates[frame.room];
        if (!current || frame.user.id === this.state.me.id) return;
        const others = current.typing.filter((t) => t.user.id !== frame.user.id);
        this.updateRoom(frame.room, { typing: [...others, { user: frame.user, until: Date.now() + TYPING_SHOWN_MS }] });
        return;
      }
      case 'left':
        return;
      case 'error':
        this.onError(frame);
        return;
    }
  }

  private onError(frame: ErrorFrame): void {
    const { ref } = frame;
    const room = ref.room;
    if (ref.type === 'send' && room && ref.clientId) {
      const clientId = ref.clientId;
      if (frame.code === 'rate_limited' || frame.code === 'unavailable') {
        // Not stored: try again later with the same clientId, so it can never be stored twice.
        const wait = frame.retryAfterMs ?? 2000;
        if (frame.code === 'rate_limited') this.notify(`You're sending quickly: waiting ${Math.ceil(wait / 1000)} s before the next one.`);
        else this.notify('The server could not store a message just now; it will be retried.');
        this.clearAckTimer(clientId);
        setTimeout(() => this.retry(room, clientId), wait);
        return;
      }
      this.setPending(room, clientId, { status: 'failed', error: frame.message });
      return;
    }
    if (ref.type === 'join' && room) {
      this.notify(frame.code === 'limit_exceeded' ? frame.message : `Could not join #${room}: ${frame.message}`);
      return;
    }
    if (ref.type === 'history' && room) this.updateRoom(room, { loadingHistory: false });
    if (frame.code === 'rate_limited') this.notify('Slow down a little: the server is limiting this tab.');
  }

  private onClosed(): void {
    // Everything is re-joined on the next welcome; until then nothing is "in".
    const roomStates: Record<string, RoomState> = {};
    for (const [name, room] of Object.entries(this.state.roomStates)) {
      roomStates[name] = { ...room, joined: false, typing: [], loadingHistory: false };
    }
    this.set({ roomStates });
    void this.checkSession();
  }

  /** A socket that keeps failing may mean the session expired: the page then asks for a name. */
  private async checkSession(): Promise<void> {
    try {
      const response = await fetch('/api/session', { credentials: 'same-origin' });
      if (response.status === 401) {
        this.socket.stop();
        this.set({ signedOut: true });
      }
    } catch {
      // Offline: the socket's own retries will tell.
    }
  }

  // Helpers.

  private transmit(room: string, pending: PendingMessage): void {
    // Unjoined (reconnecting): it goes out again after the next `joined` for this room.
    if (!this.state.roomStates[room]?.joined) return;
    if (!this.socket.send({ type: 'send', room, text: pending.text, clientId: pending.clientId })) return;
    this.clearAckTimer(pending.clientId);
    this.ackTimers.set(
      pending.clientId,
      setTimeout(() => {
        this.ackTimers.delete(pending.clientId);
        this.setPending(room, pending.clientId, { status: 'failed', error: 'No answer from the server.' });
      }, ACK_TIMEOUT_MS),
    );
  }

  private clearAckTimer(clientId: string): void {
    clearTimeout(this.ackTimers.get(clientId));
    this.ackTimers.delete(clientId);
  }

  private setPending(room: string, clientId: string, patch: Partial<PendingMessage>): void {
    this.updateRoom(room, (r) => ({
      pending: r.pending.map((p) => (p.clientId === clientId ? { ...p, ...patch } : p)),
    }));
  }

  private removePending(room: string, clientId: string): void {
    this.clearAckTimer(clientId);
    this.updateRoom(room, (r) => ({ pending: r.pending.filter((p) => p.clientId !== clientId) }));
  }

  private sweepTyping(): void {
    const now = Date.now();
    for (const room of Object.values(this.state.roomStates)) {
      if (room.typing.some((t) => t.until <= now)) {
        this.updateRoom(room.name, { typing: room.typing.filter((t) => t.until > now) });
      }
    }
  }

  private notify(text: string): void {
    this.set({ notice: { id: ++this.noticeId, text } });
  }

  private updateRoom(name: string, patch: Partial<RoomState> | ((room: RoomState) => Partial<RoomState>)): void {
    const room = this.state.roomStates[name];
    if (!room) return;
    const changes = typeof patch === 'function' ? patch(room) : patch;
    this.set({ roomStates: { ...this.state.roomStates, [name]: { ...room, ...changes } } });
  }

  private set(patch: Partial<ChatState>): void {
    this.state = { ...this.state, ...patch };
    for (const listener of this.listeners) listener();
  }

  private loadRooms(): string[] {
    try {
      const saved: unknown = JSON.parse(this.storage.getItem(ROOMS_KEY) ?? 'null');
      if (Array.isArray(saved)) {
        const rooms = saved.filter(isRoomName).slice(0, LIMITS.maxRoomsPerSocket);
        if (rooms.length > 0) return [...new Set(rooms)];
      }
    } catch {
      // A damaged entry: start over.
    }
    return ['general'];
  }

  private saveRooms(): void {
    this.storage.setItem(ROOMS_KEY, JSON.stringify(this.state.rooms));
  }
}
