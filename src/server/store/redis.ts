// Replicas: history in one Redis Stream per room, the live feed over pub/sub, presence with
// expiry. Every write that others must see in order is one Lua script, so the order messages
// are published in is the order they are stored in. docs/redis.md explains the layout.
import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { createClient } from 'redis';
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
    present: `${tag}:present`,
    names: `${tag}:names`,
    holders: (userId: string) => `${tag}:holders:${userId}`,
    dedupe: (userId: string, clientId: string) => `${tag}:dedupe:${userId}:${clientId}`,
  };
}
/** Room name → time of its last message (0 for none yet): the room list. Outside any room's slot. */
export const ROOMS_KEY = 'chatter:rooms';

/** A replica keeps its users present by refreshing each room this often... */
const PRESENCE_HEARTBEAT_MS = 5_000;
/** ...and a replica that stops (SIGKILL) has its users leave after this long, plus one heartbeat. */
const PRESENCE_TTL_MS = 20_000;
/**
 * The heartbeat is spread over the interval in this many slices, each refreshing its share of the
 * rooms: a replica in 500 rooms sends 25 calls every 250 ms, not 500 at once that would hold
 * every message behind them.
 */
const HEARTBEAT_SLICES = 20;
/** Expired users reaped per heartbeat call, so a mass departure never makes one huge reply. */
const REAP_BATCH = 500;
/** The room list's activity times are written in one batch this often, not once per message. */
const ROOM_ACTIVITY_FLUSH_MS = 1_000;
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

// A user is present in a room while any replica holds them with an unexpired entry. Entering
// (or a heartbeat) announces, in one presence change, the users that no replica held. One call
// takes any number of users of one room: KEYS[4..] are their holders hashes, ARGV[6..] their
// (id, name) pairs, so a heartbeat costs one call per room, not one per user. It also answers
// which users of the room have expired (every holder gone quiet: their replica died), so the
// heartbeat doubles as the sweep that lets them leave.
const ENTER = new Script(
  'enter',
  `
local now = tonumber(ARGV[2])
local joined = {}
for k = 4, #KEYS do
  local id, name = ARGV[2 * k - 2], ARGV[2 * k - 1]
  local live = false
  local holders = redis.call('HGETALL', KEYS[k])
  for i = 2, #holders, 2 do
    if tonumber(holders[i]) > now then live = true end
  end
  redis.call('HSET', KEYS[k], ARGV[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[k], ARGV[4])
  redis.call('ZADD', KEYS[1], 'GT', ARGV[3], id)
  redis.call('HSET', KEYS[2], id, name)
  if not live then joined[#joined + 1] = cjson.encode({id = id, name = name}) end
end
if #joined > 0 then
  redis.call('PUBLISH', KEYS[3], 'p{"joined":[' .. table.concat(joined, ',') .. '],"left":[]}')
end
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[5])
`,
);

// A replica lets go of a user (ARGV[2]), or a sweep clears expired holders (ARGV[2] empty). The
// user leaves, once, when no live holder remains.
const EXIT = new Script(
  'exit',
  `
local now = tonumber(ARGV[3])
if ARGV[2] ~= '' then redis.call('HDEL', KEYS[3], ARGV[2]) end
local best = 0
local holders = redis.call('HGETALL', KEYS[3])
for i = 1, #holders, 2 do
  local expiry = tonumber(holders[i + 1])
  if expiry > now then
    if expiry > best then best = expiry end
  else
    redis.call('HDEL', KEYS[3], holders[i])
  end
end
if best > 0 then
  redis.call('ZADD', KEYS[1], best, ARGV[1])
  return 0
end
local name = redis.call('HGET', KEYS[2], ARGV[1])
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
if removed == 1 then
  redis.call('PUBLISH', KEYS[4], 'p{"joined":[],"left":[' .. cjson.encode({id = ARGV[1], name = name or ''}) .. ']}')
end
return removed
`,
);

const PRESENT = new Script(
  'present',
  `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
if #ids == 0 then return {} end
local names = redis.call('HMGET', KEYS[2], unpack(ids))
local users = {}
for i = 1, #ids do
  users[#users + 1] = ids[i]
  users[#users + 1] = names[i] or ''
end
return users
`,
);

export interface RedisStoreOptions {
  url: string;
  historyLimit: number;
  replicaId: string;
  log: FastifyBaseLogger;
}

export class RedisStore implements ChatStore {
  readonly kind = 'redis';
  private listener: StoreListener | null = null;
  private readonly commands: RedisClient;
  private readonly feed: RedisClient;
  private ready = false;
  /** Set once the first connection was ready: every later ready is a reconnect. */
  private connectedBefore = false;
  /** Users this replica holds present, for heartbeats and a clean goodbye. */
  private readonly held = new Map<string, Map<string, User>>();
  private readonly timers: NodeJS.Timeout[] = [];
  /** Rooms still to refresh in the current heartbeat round, and how many to take per slice. */
  private heartbeatRound: { rooms: string[]; perSlice: number } = { rooms: [], perSlice: 0 };
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
    this.every(PRESENCE_HEARTBEAT_MS / HEARTBEAT_SLICES, () => this.heartbeatSlice());
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
    }
    users.set(user.id, user);
    await this.announce(room, [user]);
    this.send(['ZADD', ROOMS_KEY, 'NX', '0', room]).catch(() => {});
  }

  async exit(room: string, user: User): Promise<void> {
    const users = this.held.get(room);
    users?.delete(user.id);
    if (users?.size === 0) this.held.delete(room);
    await this.release(room, user.id, this.options.replicaId);
  }

  async present(room: string): Promise<User[]> {
    const keys = roomKeys(room);
    const flat = (await this.run(PRESENT, [keys.present, keys.names], [String(Date.now())])) as string[];
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
    const now = String(Date.now());
    const summaries = await Promise.all(
      listed.map(async ([name, score]): Promise<RoomSummary> => {
        const online = (await this.send(['ZCOUNT', roomKeys(name).present, `(${now}`, '+inf'])) as number;
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
    await this.flushActivity().catch(() => {});
    // A clean goodbye, so other replicas need not wait for the presence entries to expire.
    const goodbyes: Promise<unknown>[] = [];
    for (const [room, users] of this.held) for (const userId of users.keys()) goodbyes.push(this.release(room, userId, this.options.replicaId));
    await Promise.allSettled(goodbyes);
    this.held.clear();
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
    const ready = this.commands.isReady && this.feed.isReady && !this.closed;
    if (ready === this.ready) return;
    this.ready = ready;
    this.listener?.readiness(ready);
    if (!ready) {
      this.options.log.warn('lost the connection to redis: sends are refused until it is back');
      return;
    }
    this.options.log.info({ reconnect: this.connectedBefore }, 'connected to redis');
    if (this.connectedBefore) {
      // The feed was re-subscribed before it reported ready; now fill what it missed.
      this.listener?.resync();
      void this.refreshAll();
    }
    this.connectedBefore = true;
  }

  /**
   * Announces (or refreshes) users this replica holds in one room, in calls of a bounded size,
   * then lets the room's expired users leave.
   */
  private async announce(room: string, users: User[]): Promise<void> {
    const keys = roomKeys(room);
    const now = Date.now();
    const calls: Array<Promise<string[]>> = [];
    for (let start = 0; start < users.length; start += ENTER_BATCH) {
      const batch = users.slice(start, start + ENTER_BATCH);
      const call = this.run(
        ENTER,
        [keys.present, keys.names, keys.channel, ...batch.map((user) => keys.holders(user.id))],
        [this.options.replicaId, String(now), String(now + PRESENCE_TTL_MS), String(PRESENCE_TTL_MS * 2), String(REAP_BATCH), ...batch.flatMap((user) => [user.id, user.name])],
      );
      calls.push(call as Promise<string[]>);
    }
    // Every call answers the same room's expired users: reaping after the first is enough.
    const [expired] = await Promise.all(calls);
    if (expired && expired.length > 0) await Promise.allSettled(expired.map((userId) => this.release(room, userId, '')));
  }

  private release(room: string, userId: string, replicaId: string): Promise<Reply> {
    const keys = roomKeys(room);
    return this.run(EXIT, [keys.present, keys.names, keys.holders(userId), keys.channel], [userId, replicaId, String(Date.now())]);
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

  /**
   * One slice of the heartbeat: refreshes this slice's share of the rooms held, so every room is
   * refreshed (and swept) once per PRESENCE_HEARTBEAT_MS, in calls spread evenly over it.
   */
  private async heartbeatSlice(): Promise<void> {
    if (!this.ready) return;
    const round = this.heartbeatRound;
    if (round.rooms.length === 0) {
      round.rooms = [...this.held.keys()];
      round.perSlice = Math.ceil(round.rooms.length / HEARTBEAT_SLICES);
    }
    await Promise.allSettled(round.rooms.splice(0, round.perSlice).map((room) => this.refresh(room)));
  }

  /** Every room at once: after a reconnect, when Redis may have lost what it had. */
  private async refreshAll(): Promise<void> {
    if (!this.ready) return;
    await Promise.allSettled([...this.held.keys()].map((room) => this.refresh(room)));
  }

  private async refresh(room: string): Promise<void> {
    const users = this.held.get(room); // gone since the round began: nothing to refresh
    if (users) await this.announce(room, [...users.values()]);
  }

  private every(ms: number, task: () => Promise<void>): void {
    const timer = setInterval(() => {
      task().catch((err: unknown) => this.options.log.debug({ err }, 'presence upkeep failed'));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private async send(args: string[]): Promise<Reply> {
    if (!this.commands.isReady) throw new StoreUnavailableError();
    return this.commands.sendCommand(args);
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
