// What the chat needs from storage: history, idempotent appends, a live feed per room and
// presence. memory.ts serves one process; the Redis store serves many replicas. Nothing above
// this interface knows which one is in use.
import type { ChatMessage, User } from '../chat/protocol';

export interface AppendResult {
  /** The stored message's id; for a repeated clientId, the id of the first one. */
  id: string;
  /** True when the clientId was already used: nothing was stored or published. */
  duplicate: boolean;
}

export interface PresenceChange {
  joined: User[];
  left: User[];
}

export interface RoomSummary {
  name: string;
  /** Users present, across every replica. */
  online: number;
  /** Null for a room that has people in it but no messages yet. */
  lastMessageAt: number | null;
}

/**
 * A new message as the live feed hands it over: its id and time, and the rest as the JSON text it
 * was stored as, so that fan-out can splice it into a frame without parsing it again.
 */
export interface FeedMessage {
  id: string;
  ts: number;
  /** `{"user":…,"text":…,"clientId":…}` */
  body: string;
}

export function toFeed(message: ChatMessage): FeedMessage {
  const { id, ts, user, text, clientId } = message;
  return { id, ts, body: messageBody(user, text, clientId) };
}

export function fromFeed({ id, ts, body }: FeedMessage): ChatMessage {
  const { user, text, clientId } = JSON.parse(body) as Omit<ChatMessage, 'id' | 'ts'>;
  return { id, ts, user, text, clientId };
}

/** The one serialisation of a message's content: stored, published and delivered as is. */
export function messageBody(user: User, text: string, clientId: string): string {
  return JSON.stringify({ user: { id: user.id, name: user.name }, text, clientId });
}

/** Receives the live feed of the rooms this process subscribed to. */
export interface StoreListener {
  /** Called in id order per room. The same message may come twice after a resync. */
  message(room: string, message: FeedMessage): void;
  presence(room: string, change: PresenceChange): void;
  typing(room: string, user: User): void;
  /** The live feed may have missed messages (a reconnect): re-read every subscribed room. */
  resync(): void;
  readiness(ready: boolean): void;
}

export interface Readiness {
  ready: boolean;
  reason?: string;
}

export interface ChatStore {
  readonly kind: 'memory' | 'redis';
  setListener(listener: StoreListener): void;
  readiness(): Readiness;

  /**
   * Stores a message and publishes it to the room, unless this user already used `clientId` in
   * this room within the dedupe window. Resolves only once the message is durably stored.
   */
  append(room: string, author: User, text: string, clientId: string): Promise<AppendResult>;
  /** Up to `limit` messages older than `beforeId` (or the newest), oldest first. */
  before(room: string, beforeId: string | undefined, limit: number): Promise<{ messages: ChatMessage[]; hasMore: boolean }>;
  /**
   * Every message after `sinceId` (null: from the room's beginning), oldest first; or null when
   * the store cannot prove that it still holds all of them (trimmed, lost in a restart, unknown
   * id) or there are more than `limit`.
   */
  after(room: string, sinceId: string | null, limit: number): Promise<ChatMessage[] | null>;

  subscribe(room: string): Promise<void>;
  unsubscribe(room: string): Promise<void>;

  /** This process's first socket of `user` entered the room; publishes a presence change if it is new. */
  enter(room: string, user: User): Promise<void>;
  /** This process's last socket of `user` left the room. */
  exit(room: string, user: User): Promise<void>;
  present(room: string): Promise<User[]>;
  /** Best effort: never stored, never awaited. */
  typing(room: string, user: User): void;

  /** Most recently active rooms first. */
  rooms(limit: number): Promise<RoomSummary[]>;
  close(): Promise<void>;
}

export class StoreUnavailableError extends Error {
  constructor(message = 'the message store is unavailable') {
    super(message);
    this.name = 'StoreUnavailableError';
  }
}

/** The store is full (embedded mode's room cap): the message was refused, not lost. */
export class StoreLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreLimitError';
  }
}

/** Most recently active first; rooms without messages last, by name. */
export function byActivity(a: RoomSummary, b: RoomSummary): number {
  const activity = (b.lastMessageAt ?? -1) - (a.lastMessageAt ?? -1);
  return activity !== 0 ? activity : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
