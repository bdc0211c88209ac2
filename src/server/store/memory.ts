// Embedded mode: one process keeps history, dedupe keys and presence in memory. Everything is
// lost on restart, which main says in the log at start.
import { LIMITS, compareIds, type ChatMessage, type User } from '../chat/protocol';
import { StoreLimitError, byActivity, toFeed, type AppendResult, type ChatStore, type Readiness, type RoomSummary, type StoreListener } from './store';

interface RoomRecord {
  messages: ChatMessage[];
  lastMs: number;
  lastSeq: number;
  /** Id of the newest message trimmed away; resuming from it is still complete. */
  trimmedThrough: string | null;
  present: Map<string, User>;
}

const NO_LISTENER: StoreListener = {
  message() {},
  presence() {},
  typing() {},
  resync() {},
  readiness() {},
};

export class MemoryStore implements ChatStore {
  readonly kind = 'memory';
  private listener: StoreListener = NO_LISTENER;
  private readonly records = new Map<string, RoomRecord>();
  private readonly subscribed = new Set<string>();
  // Insertion order is expiry order, so expired keys are always at the front.
  private readonly dedupe = new Map<string, { id: string; expiresAt: number }>();

  private readonly historyLimit: number;
  private readonly maxRooms: number;
  private readonly now: () => number;
  /** Rooms holding messages: they stay for the life of the process, so their number is capped. */
  private roomsWithHistory = 0;

  constructor({ historyLimit, maxRooms = 10_000, now = Date.now }: { historyLimit: number; maxRooms?: number; now?: () => number }) {
    this.historyLimit = historyLimit;
    this.maxRooms = maxRooms;
    this.now = now;
  }

  setListener(listener: StoreListener): void {
    this.listener = listener;
  }

  readiness(): Readiness {
    return { ready: true };
  }

  async append(room: string, author: User, text: string, clientId: string): Promise<AppendResult> {
    const now = this.now();
    this.sweepDedupe(now);
    const dedupeKey = `${author.id}\n${room}\n${clientId}`;
    const seen = this.dedupe.get(dedupeKey);
    if (seen) return { id: seen.id, duplicate: true };

    const record = this.record(room);
    if (record.messages.length === 0) {
      if (this.roomsWithHistory >= this.maxRooms) {
        this.forgetIfEmpty(room);
        throw new StoreLimitError(`this server keeps at most ${this.maxRooms} rooms; write in an existing one`);
      }
      this.roomsWithHistory++;
    }
    // Ids grow strictly even when the clock stalls or steps back, as Redis stream ids do.
    if (now > record.lastMs) {
      record.lastMs = now;
      record.lastSeq = 0;
    } else {
      record.lastSeq++;
    }
    const message: ChatMessage = {
      id: `${record.lastMs}-${record.lastSeq}`,
      ts: now,
      user: { id: author.id, name: author.name },
      text,
      clientId,
    };
    record.messages.push(message);
    if (record.messages.length > this.historyLimit) {
      const trimmed = record.messages.splice(0, record.messages.length - this.historyLimit);
      record.trimmedThrough = trimmed[trimmed.length - 1]!.id;
    }
    this.dedupe.set(dedupeKey, { id: message.id, expiresAt: now + LIMITS.dedupeWindowMs });

    if (this.subscribed.has(room)) this.listener.message(room, toFeed(message));
    return { id: message.id, duplicate: false };
  }

  async before(room: string, beforeId: string | undefined, limit: number) {
    const messages = this.records.get(room)?.messages ?? [];
    const end = beforeId === undefined ? messages.length : lowerBound(messages, beforeId);
    const start = Math.max(0, end - limit);
    return { messages: messages.slice(start, end), hasMore: start > 0 };
  }

  async after(room: string, sinceId: string | null, limit: number): Promise<ChatMessage[] | null> {
    const record = this.records.get(room);
    if (!record) return sinceId === null ? [] : null;
    let start: number;
    if (sinceId === null) {
      if (record.trimmedThrough !== null) return null;
      start = 0;
    } else if (sinceId === record.trimmedThrough) {
      start = 0;
    } else {
      const index = lowerBound(record.messages, sinceId);
      if (record.messages[index]?.id !== sinceId) return null;
      start = index + 1;
    }
    if (record.messages.length - start > limit) return null;
    return record.messages.slice(start);
  }

  async subscribe(room: string): Promise<void> {
    this.subscribed.add(room);
  }

  async unsubscribe(room: string): Promise<void> {
    this.subscribed.delete(room);
    this.forgetIfEmpty(room);
  }

  async enter(room: string, user: User): Promise<void> {
    const present = this.record(room).present;
    if (present.has(user.id)) return;
    present.set(user.id, { id: user.id, name: user.name });
    if (this.subscribed.has(room)) this.listener.presence(room, { joined: [user], left: [] });
  }

  async exit(room: string, user: User): Promise<void> {
    const record = this.records.get(room);
    if (!record?.present.delete(user.id)) return;
    if (this.subscribed.has(room)) this.listener.presence(room, { joined: [], left: [user] });
    this.forgetIfEmpty(room);
  }

  async present(room: string): Promise<User[]> {
    return [...(this.records.get(room)?.present.values() ?? [])];
  }

  typing(room: string, user: User): void {
    if (this.subscribed.has(room)) this.listener.typing(room, user);
  }

  async rooms(limit: number): Promise<RoomSummary[]> {
    const summaries: RoomSummary[] = [];
    for (const [name, record] of this.records) {
      summaries.push({
        name,
        online: record.present.size,
        lastMessageAt: record.messages.at(-1)?.ts ?? null,
      });
    }
    return summaries.sort(byActivity).slice(0, limit);
  }

  async close(): Promise<void> {
    this.subscribed.clear();
  }

  private record(room: string): RoomRecord {
    let record = this.records.get(room);
    if (!record) {
      record = { messages: [], lastMs: 0, lastSeq: 0, trimmedThrough: null, present: new Map() };
      this.records.set(room, record);
    }
    return record;
  }

  /** A room nobody is in and nobody wrote in leaves no trace. */
  private forgetIfEmpty(room: string): void {
    const record = this.records.get(room);
    if (record && record.messages.length === 0 && record.present.size === 0 && !this.subscribed.has(room)) {
      this.records.delete(room);
    }
  }

  private sweepDedupe(now: number): void {
    for (const [key, entry] of this.dedupe) {
      if (entry.expiresAt > now) break;
      this.dedupe.delete(key);
    }
  }
}

/** Index of the first message whose id is not below `id` (messages are in id order). */
function lowerBound(messages: ChatMessage[], id: string): number {
  let low = 0;
  let high = messages.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (compareIds(messages[mid]!.id, id) < 0) low = mid + 1;
    else high = mid;
  }
  return low;
}
