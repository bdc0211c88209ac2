// Replicas: history in one Redis Stream per room, the live feed over pub/sub, presence held by
// replicas that keep a lease. Every write that others must see in order is one Lua script, so
// the order messages are published in is the order they are stored in. docs/redis.md explains
// the layout.
import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { TimeoutError, TimeoutReadError, createClient } from 'redis';
import { LIMITS, type ChatMessage, type User } from '../chat/protocol';
import {
  StoreUnavailableError,
  byActivity,
  messageBody,
  type AppendResult,
  type ChatStore,
  type Readiness,
  type RoomSummary,
  type StoreListener,
} from './store';

type RedisClient = ReturnType<typeof createClient>;
type Reply = unknown;

/** Every key and channel of a room shares the `{room}` hash tag: one Cluster slot per room. */
export function roomKeys(room: string) {
  const tag = `chatter:{${room}}`;
  return {
    stream: `${tag}:stream`,
    channel: `${tag}:feed`,
    users: `${tag}:users`,
    holds: `${tag}:holds`,
    held: (replicaId: string) => `${tag}:held:${replicaId}`,
    dedupe: (userId: string, clientId: string) => `${tag}:dedupe:${userId}:${clientId}`,
  };
}
/** Room name → time of its last message (0 for none yet): the room list. Outside any room's slot. */
export const ROOMS_KEY = 'chatter:rooms';
/** Replica id → when its lease ends (ms). Outside any room's slot, as is each replica's room index. */
export const REPLICAS_KEY = 'chatter:replicas';
/** The rooms a replica holds users in: where to look once its lease has run out. */
export const replicaRoomsKey = (replicaId: string) => `chatter:replica:${replicaId}:rooms`;

/**
 * A replica renews its lease, and looks for replicas whose lease ran out, every `renewMs`; one
 * that stops (SIGKILL) has its users leave once its lease ends, within `renewMs` more: 25 s.
 */
const LEASE = { ms: 20_000, renewMs: 5_000 };
/** The room list's activity times are written in one batch this often, not once per message. */
const ROOM_ACTIVITY_FLUSH_MS = 1_000;
/**
 * A command Redis has not answered within this long fails: a Redis that hangs (stopped, swapping,
 * a disk that does not return) then refuses sends with `unavailable` instead of leaving them
 * unanswered. An append it runs later anyway is harmless: the client sends it again with the same
 * clientId and is acked with the stored id.
 */
const COMMAND_TIMEOUT_MS = 5_000;
/** While Redis is stalled, it is pinged this often; the first answer makes the replica ready again. */
const STALL_PROBE_MS = 1_000;
/** Users announced per call, so a crowded room never holds Redis in one long script. */
const ENTER_BATCH = 100;

class Script {
  readonly sha: string;
  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}

// Feed payloads: one letter for the kind, then the data. A message carries its stream id and the
// JSON body that the replica that stored it serialised once.
const APPEND = new Script(
  'append',
  `
local seen = redis.call('GET', KEYS[2])
if seen then return {seen, 1} end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[3])
redis.call('SET', KEYS[2], id, 'PX', ARGV[2])
redis.call('PUBLISH', KEYS[3], 'm' .. id .. '\\n' .. ARGV[3])
return {id, 0}
`,
);

// Complete means: the stream still holds \`since\` itself (nothing after it was trimmed, and the
// stream is not a new one after Redis lost its data), or, from the beginning, every entry ever
// added is still there (entries-added, Redis 7+; trimming does not move max-deleted-entry-id).
const AFTER = new Script(
  'after',
  `
local limit = tonumber(ARGV[2])
if ARGV[1] == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    local info = redis.call('XINFO', 'STREAM', KEYS[1])
    local length, added
    for i = 1, #info, 2 do
      if info[i] == 'length' then length = info[i + 1] end
      if info[i] == 'entries-added' then added = info[i + 1] end
    end
    if added == nil or added ~= length then return false end
  end
  return redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', limit + 1)
end
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return false end
return redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', limit + 1)
`,
);

// A user is present in a room while some replica holds them: `held:<replica>` lists whom each
// replica holds, `holds` counts the replicas holding each user, and `users` names everyone
// present. Entering announces, in one presence change, the users no replica held before.
// Holding needs no upkeep: a replica that dies is found by its lease, and its holdings released.
// KEYS: users, holds, held:<replica>, channel. ARGV: (id, name) pairs.
const ENTER = new Script(
  'enter',
  `
local joined = {}
for i = 1, #ARGV, 2 do
  local id, name = ARGV[i], ARGV[i + 1]
  if redis.call('SADD', KEYS[3], id) == 1 then
    redis.call('HSET', KEYS[1], id, name)
    if redis.call('HINCRBY', KEYS[2], id, 1) == 1 then joined[#joined + 1] = cjson.encode({id = id, name = name}) end
  end
end
if #joined > 0 then
  redis.call('PUBLISH', KEYS[4], 'p{"joined":[' .. table.concat(joined, ',') .. '],"left":[]}')
end
return #joined
`,
);

// A replica lets go of users (ARGV: their ids), or, with no ARGV, of everyone it held in the
// room (its lease ran out and another replica releases for it). A user leaves, once, when no
// replica holds them any more. Answers how many the replica still holds in the room.
const EXIT = new Script(
  'exit',
  `
local ids = ARGV
if #ids == 0 then ids = redis.call('SMEMBERS', KEYS[3]) end
local left = {}
for _, id in ipairs(ids) do
  if redis.call('SREM', KEYS[3], id) == 1 and redis.call('HINCRBY', KEYS[2], id, -1) <= 0 then
    left[#left + 1] = cjson.encode({id = id, name = redis.call('HGET', KEYS[1], id) or ''})
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[1], id)
  end
end
if #left > 0 then
  redis.call('PUBLISH', KEYS[4], 'p{"joined":[],"left":[' .. table.concat(left, ',') .. ']}')
end
return redis.call('SCARD', KEYS[3])
`,
);

const PRESENT = new Script('present', `return redis.call('HGETALL', KEYS[1])`);

export interface RedisStoreOptions {
  url: string;
  historyLimit: number;
  replicaId: string;
  log: FastifyBaseLogger;
  /** Tests shorten these. */
  lease?: { ms: number; renewMs: number };
  commandTimeoutMs?: number;
}

export class RedisStore implements ChatStore {
  readonly kind = 'redis';
  private listener: StoreListener | null = null;
  private readonly commands: RedisClient;
  private readonly feed: RedisClient;
  private ready = false;
  /** Connected, but a command went unanswered past its deadline: not ready until Redis answers again. */
  private stalled = false;
  private stallProbe: NodeJS.Timeout | undefined;
  /** Set once the first connection was ready: every later ready is a reconnect. */
  private connectedBefore = false;
  /** Users this replica holds present, to hold them again if Redis forgot, and for a clean goodbye. */
  private readonly held = new Map<string, Map<string, User>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;
  /** Rooms written in since the last flush, and the time of their newest message. */
  private readonly activity = new Map<string, number>();

  constructor(private readonly options: RedisStoreOptions) {
    const clientOptions = {
      url: options.url,
      // Reply shapes below (pairs from WITHSCORES) are RESP3's; pinned so an upgrade cannot shift them.
      RESP: 3 as const,
      // Fail fast while disconnected: a send gets `unavailable` at once instead of waiting.
      disableOfflineQueue: true,
      socket: { reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000), connectTimeout: 5000 },
    };
    this.commands = createClient(clientOptions);
    this.feed = createClient(clientOptions);
    for (const [role, client] of [
      ['commands', this.commands],
      ['feed', this.feed],
    ] as const) {
      client.on('error', (err: Error) => options.log.debug({ err, role }, 'redis connection error'));
      client.on('ready', () => this.onConnectionChange());
      client.on('end', () => this.onConnectionChange());
      client.on('reconnecting', () => this.onConnectionChange());
    }
  }

  /** Starts connecting; does not wait for Redis (readiness tells when it is there). */
  start(): void {
    for (const client of [this.commands, this.feed]) {
      client.connect().catch((err: unknown) => this.options.log.warn({ err }, 'redis connect failed'));
    }
    const { renewMs } = this.options.lease ?? LEASE;
    this.every(renewMs, () => this.renewLease());
    this.every(renewMs, () => this.releaseExpiredReplicas());
    this.every(ROOM_ACTIVITY_FLUSH_MS, () => this.flushActivity());
  }

  setListener(listener: StoreListener): void {
    this.listener = listener;
  }

  readiness(): Readiness {
    if (this.ready) return { ready: true };
    return { ready: false, reason: 'redis unavailable' };
  }

  async append(room: string, author: User, text: string, clientId: string): Promise<AppendResult> {
    const keys = roomKeys(room);
    // Serialised here once: stored in the stream, and published as is.
    const body = messageBody(author, text, clientId);
    const [id, duplicate] = (await this.run(
      APPEND,
      [keys.stream, keys.dedupe(author.id, clientId), keys.channel],
      [String(this.options.historyLimit), String(LIMITS.dedupeWindowMs), body],
    )) as [string, number];
    if (!duplicate) this.activity.set(room, timeOf(id));
    return { id, duplicate: duplicate === 1 };
  }

  async before(room: string, beforeId: string | undefined, limit: number) {
    const end = beforeId === undefined ? '+' : `(${beforeId}`;
    const entries = (await this.send(['XREVRANGE', roomKeys(room).stream, end, '-', 'COUNT', String(limit + 1)])) as StreamEntry[];
    const hasMore = entries.length > limit;
    return { messages: entries.slice(0, limit).reverse().map(fromEntry), hasMore };
  }

  async after(room: string, sinceId: string | null, limit: number): Promise<ChatMessage[] | null> {
    const entries = (await this.run(AFTER, [roomKeys(room).stream], [sinceId ?? '', String(limit)])) as StreamEntry[] | null;
    if (entries === null || entries.length > limit) return null;
    return entries.map(fromEntry);
  }

  async subscribe(room: string): Promise<void> {
    if (!this.feed.isReady) throw new StoreUnavailableError();
    await this.feed.subscribe(roomKeys(room).channel, (payload) => this.onFeed(room, payload));
  }

  async unsubscribe(room: string): Promise<void> {
    if (this.feed.isReady) await this.feed.unsubscribe(roomKeys(room).channel);
  }

  async enter(room: string, user: User): Promise<void> {
    let users = this.held.get(room);
    if (!users) {
      users = new Map();
      this.held.set(room, users);
      // Indexed before anyone is held there, so a lease that runs out always finds the room.
      this.send(['SADD', replicaRoomsKey(this.options.replicaId), room]).catch(() => {});
    }
    users.set(user.id, user);
    await this.hold(room, [user]);
    this.send(['ZADD', ROOMS_KEY, 'NX', '0', room]).catch(() => {});
  }

  async exit(room: string, user: User): Promise<void> {
    const users = this.held.get(room);
    users?.delete(user.id);
    if (users?.size === 0) this.held.delete(room);
    const stillHeld = await this.release(room, this.options.replicaId, [user.id]);
    if (stillHeld === 0 && !this.held.has(room)) this.send(['SREM', replicaRoomsKey(this.options.replicaId), room]).catch(() => {});
  }

  async present(room: string): Promise<User[]> {
    const flat = (await this.run(PRESENT, [roomKeys(room).users], [])) as string[];
    const users: User[] = [];
    for (let i = 0; i < flat.length; i += 2) users.push({ id: flat[i]!, name: flat[i + 1]! });
    return users;
  }

  typing(room: string, user: User): void {
    if (!this.ready) return;
    this.commands.publish(roomKeys(room).channel, `t${JSON.stringify({ id: user.id, name: user.name })}`).catch(() => {});
  }

  async rooms(limit: number): Promise<RoomSummary[]> {
    // Rooms with people but no messages sort last, so read a little further than the limit.
    const listed = (await this.send(['ZREVRANGE', ROOMS_KEY, '0', String(limit * 2 - 1), 'WITHSCORES'])) as Array<[string, number]>;
    const summaries = await Promise.all(
      listed.map(async ([name, score]): Promise<RoomSummary> => {
        const online = (await this.send(['HLEN', roomKeys(name).users])) as number;
        return { name, online, lastMessageAt: Number(score) || null };
      }),
    );
    const forgotten = summaries.filter((room) => room.online === 0 && room.lastMessageAt === null);
    if (forgotten.length > 0) this.send(['ZREM', ROOMS_KEY, ...forgotten.map((room) => room.name)]).catch(() => {});
    return summaries.filter((room) => !forgotten.includes(room)).sort(byActivity).slice(0, limit);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    clearInterval(this.stallProbe);
    await this.flushActivity().catch(() => {});
    // A clean goodbye, so other replicas need not wait for the lease to run out.
    const { replicaId } = this.options;
    await Promise.allSettled([...this.held].map(([room, users]) => this.release(room, replicaId, [...users.keys()])));
    this.held.clear();
    if (this.commands.isReady) {
      await this.commands.multi().zRem(REPLICAS_KEY, replicaId).del(replicaRoomsKey(replicaId)).exec().catch(() => {});
    }
    await Promise.allSettled([this.commands, this.feed].map((client) => (client.isOpen ? client.close() : Promise.resolve())));
    for (const client of [this.commands, this.feed]) if (client.isOpen) client.destroy();
  }

  // Internals.

  private onFeed(room: string, payload: string): void {
    const listener = this.listener;
    if (!listener) return;
    try {
      switch (payload[0]) {
        case 'm': {
          const newline = payload.indexOf('\n');
          const id = payload.slice(1, newline);
          // Published by our own APPEND script as JSON.stringify made it: passed on unparsed.
          listener.message(room, { id, ts: timeOf(id), body: payload.slice(newline + 1) });
          return;
        }
        case 'p':
          listener.presence(room, JSON.parse(payload.slice(1)));
          return;
        case 't':
          listener.typing(room, JSON.parse(payload.slice(1)) as User);
          return;
      }
    } catch (err) {
      this.options.log.error({ err, room }, 'unreadable feed payload');
    }
  }

  private onConnectionChange(): void {
    const ready = this.commands.isReady && this.feed.isReady && !this.stalled && !this.closed;
    if (ready === this.ready) return;
    this.ready = ready;
    this.listener?.readiness(ready);
    if (!ready) {
      this.options.log.warn('redis is unavailable: sends are refused until it is back');
      return;
    }
    this.options.log.info({ reconnect: this.connectedBefore }, 'connected to redis');
    if (this.connectedBefore) {
      // The feed was re-subscribed before it reported ready; now fill what it missed.
      this.listener?.resync();
    }
    // The lease first, so that it exists before anyone is held (and after Redis lost its data).
    void this.renewLease().catch((err: unknown) => this.options.log.debug({ err }, 'lease renewal failed'));
    this.connectedBefore = true;
  }

  /** Holds users in one room, in calls of a bounded size; announces those no replica held. */
  private async hold(room: string, users: User[]): Promise<void> {
    const keys = roomKeys(room);
    const calls: Promise<Reply>[] = [];
    for (let start = 0; start < users.length; start += ENTER_BATCH) {
      const batch = users.slice(start, start + ENTER_BATCH);
      const pairs = batch.flatMap((user) => [user.id, user.name]);
      calls.push(this.run(ENTER, [keys.users, keys.holds, keys.held(this.options.replicaId), keys.channel], pairs));
    }
    await Promise.all(calls);
  }

  /** Lets go of users held by a replica in a room (none named: all of them); answers how many it still holds. */
  private async release(room: string, replicaId: string, userIds: string[]): Promise<number> {
    const keys = roomKeys(room);
    return (await this.run(EXIT, [keys.users, keys.holds, keys.held(replicaId), keys.channel], userIds)) as number;
  }

  /**
   * Renews this replica's lease: one command every few seconds, however many rooms and users
   * it holds. A lease that was gone (Redis lost its data, or others took this replica for dead
   * after a long pause and released its users) means Redis no longer knows whom this replica
   * holds, so it holds them all again, announcing any who had left.
   */
  private async renewLease(): Promise<void> {
    if (!this.commands.isReady || this.closed) return;
    const { replicaId } = this.options;
    const leaseMs = (this.options.lease ?? LEASE).ms;
    const added = (await this.send(['ZADD', REPLICAS_KEY, String(Date.now() + leaseMs), replicaId])) as number;
    if (this.held.size === 0) return;
    const rooms = [...this.held.keys()];
    // Re-indexed each time too: an enter and an exit racing in one room can drop it from the index.
    for (let start = 0; start < rooms.length; start += 1000) {
      await this.send(['SADD', replicaRoomsKey(replicaId), ...rooms.slice(start, start + 1000)]);
    }
    if (added === 1) await Promise.allSettled([...this.held].map(([room, users]) => this.hold(room, [...users.values()])));
  }

  /** Releases everyone held by replicas whose lease ran out (they died without a goodbye). */
  private async releaseExpiredReplicas(): Promise<void> {
    if (!this.ready) return;
    const expired = (await this.send(['ZRANGEBYSCORE', REPLICAS_KEY, '-inf', String(Date.now()), 'LIMIT', '0', '10'])) as string[];
    for (const replicaId of expired) {
      if (replicaId === this.options.replicaId) continue; // paused past its own lease: renewing fixes it
      const rooms = (await this.send(['SMEMBERS', replicaRoomsKey(replicaId)])) as string[];
      await Promise.allSettled(rooms.map((room) => this.release(room, replicaId, [])));
      await this.send(['DEL', replicaRoomsKey(replicaId)]);
      await this.send(['ZREM', REPLICAS_KEY, replicaId]);
      this.options.log.info({ replica: replicaId, rooms: rooms.length }, 'released the users of a replica whose lease ran out');
    }
  }

  /**
   * One ZADD for every room written in since the last flush: the room list trails by at most a
   * second, and a busy replica spends one command a second on it instead of one per message.
   * GT keeps the newest time when replicas flush out of order.
   */
  private async flushActivity(): Promise<void> {
    if (this.activity.size === 0 || !this.commands.isReady) return;
    const pairs = [...this.activity].flatMap(([room, ms]) => [String(ms), room]);
    this.activity.clear();
    await this.send(['ZADD', ROOMS_KEY, 'GT', ...pairs]);
  }

  private every(ms: number, task: () => Promise<void>): void {
    const timer = setInterval(() => {
      task().catch((err: unknown) => this.options.log.debug({ err }, 'presence upkeep failed'));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private async send(args: string[]): Promise<Reply> {
    if (!this.commands.isReady || this.stalled) throw new StoreUnavailableError();
    try {
      return await this.commands.sendCommand(args, { timeout: this.options.commandTimeoutMs ?? COMMAND_TIMEOUT_MS, rejectInFlight: true });
    } catch (err) {
      if (err instanceof TimeoutError || err instanceof TimeoutReadError) this.onStall();
      throw err;
    }
  }

  /** Redis stopped answering: not ready (sends refused, /readyz 503) until a ping gets through. */
  private onStall(): void {
    if (this.stalled || this.closed) return;
    this.stalled = true;
    this.options.log.warn('redis stopped answering: sends are refused until it does again');
    this.onConnectionChange();
    this.stallProbe = setInterval(() => {
      const timeout = this.options.commandTimeoutMs ?? COMMAND_TIMEOUT_MS;
      this.commands.sendCommand(['PING'], { timeout, rejectInFlight: true }).then(
        () => {
          if (!this.stalled || this.closed) return;
          clearInterval(this.stallProbe);
          this.stalled = false;
          this.options.log.info('redis answers again');
          this.onConnectionChange();
        },
        () => {}, // still stalled, or disconnected (which reconnecting handles)
      );
    }, STALL_PROBE_MS);
    this.stallProbe.unref();
  }

  /** EVALSHA, loading the script with EVAL when Redis does not have it (first use, or after a restart). */
  private async run(script: Script, keys: string[], args: string[]): Promise<Reply> {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await this.send(['EVALSHA', script.sha, ...tail]);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return this.send(['EVAL', script.source, ...tail]);
    }
  }
}

type StreamEntry = [id: string, fields: string[]];

function fromEntry([id, fields]: StreamEntry): ChatMessage {
  const body = JSON.parse(fields[1]!) as Omit<ChatMessage, 'id' | 'ts'>;
  return { id, ts: timeOf(id), user: body.user, text: body.text, clientId: body.clientId };
}

function timeOf(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}
