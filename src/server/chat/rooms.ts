// Local membership and fan-out: which of this process's sockets are in which room, and getting
// each room's live feed to them once each, in id order, without gaps around a join.
import type { FastifyBaseLogger } from 'fastify';
import type { Metrics } from '../metrics';
import { toFeed, type ChatStore, type FeedMessage, type PresenceChange, type StoreListener } from '../store/store';
import { LocalPresence } from './presence';
import { LIMITS, compareIds, type ChatMessage, type ServerFrame, type User } from './protocol';
import { textFrame } from './wire';

/** One socket as the hub sees it. */
export interface Member {
  readonly user: User;
  /** Writes a frame made by `encode` (or `textFrame`): bytes ready for the wire. */
  write(frame: Buffer): void;
  /** Closes the socket with 1012 so the client reconnects and resumes by itself. */
  restart(): void;
}

/**
 * A resume replays at most this many messages, in a `joined` frame of at most this many bytes;
 * beyond that the client starts afresh from the latest messages and pages back through history.
 * Kept well under the 1 MiB slow-reader cutoff, so a resume never looks like a slow reader.
 */
export const RESUME_LIMIT = { messages: 500, bytes: 256 * 1024 } as const;

/**
 * Each room keeps its newest messages as the feed delivered them, so that most resumes (a
 * reconnect after a blip, a storm of them after a replica restarts) are answered here, without a
 * read from the store: per room at most this many, and in all at most `totalBytes`.
 */
export const RECENT_LIMIT = { messages: 256, bytes: 64 * 1024, totalBytes: 64 * 1024 * 1024 } as const;

/** How long presence changes in a room are gathered into one frame. */
export const PRESENCE_BATCH_MS = 100;

/**
 * How long a user whose last socket in a room dropped (closed, rather than sent `leave`) still
 * counts as present. A reload, a network blip or a reconnect storm then shows no one leaving
 * and coming back, and costs the store nothing: the user is simply still there.
 */
export const PRESENCE_GRACE_MS = 5_000;

/** How a member stopped being in a room: it said `leave`, or its socket went. */
export type Departure = 'left' | 'dropped';

interface Membership {
  /** Frames held back while the join reads history; null once `joined` was sent. */
  pending: Array<{ id: string | null; frame: Buffer }> | null;
  /** Messages up to this id were already sent in `joined`; null when none can repeat. */
  floor: string | null;
}

interface LocalRoom {
  readonly members: Map<Member, Membership>;
  readonly subscribed: Promise<void>;
  /** Guards against a message arriving twice (a resync overlapping the live feed). */
  lastDeliveredId: string | null;
  /** Live messages held while a resync reads what the feed missed; null when not resyncing. */
  replaying: FeedMessage[] | null;
  /** Presence changes gathered for the next presence frame; null when there are none. */
  presence: { joined: Map<string, User>; left: Map<string, User>; timer: NodeJS.Timeout } | null;
  /** The read of who is present (as JSON) under way, and the one queued to start after it. */
  roster: { reading: Promise<string> | null; queued: Promise<string> | null };
  /**
   * The newest messages delivered, oldest first, with no gap between them: so all of them after
   * any one of them. Emptied whenever a gap could open (a message not kept, a failed replay).
   */
  recent: FeedMessage[];
  recentBytes: number;
}

/** Messages ready for a `joined` frame: their JSON array, and the newest one's id. */
interface Page {
  json: string;
  lastId: string | undefined;
}

function pageOf(messages: ChatMessage[]): Page {
  return { json: JSON.stringify(messages), lastId: messages.at(-1)?.id };
}

/** `M` as JSON, spliced around the body as it was stored (room names and ids need no escaping). */
function messageJson(message: FeedMessage): string {
  return `{"id":"${message.id}","ts":${message.ts},${message.body.slice(1)}`;
}

/** What a kept message counts against the limits: its body and about what the rest takes. */
function sizeOf(message: FeedMessage): number {
  return message.body.length + 64;
}

/** A server frame, serialised and framed: the bytes to write to a socket. */
export function encode(frame: ServerFrame): Buffer {
  return textFrame(JSON.stringify(frame));
}

/** A `joined` frame around a list of users serialised once for every join that shares it. */
function joinedFrame(room: string, messagesJson: string, usersJson: string, resumed: boolean): Buffer {
  return textFrame(`{"type":"joined","room":"${room}","messages":${messagesJson},"users":${usersJson},"resumed":${resumed}}`);
}

function noop(): void {}

export class RoomHub implements StoreListener {
  private readonly rooms = new Map<string, LocalRoom>();
  private readonly localPresence = new LocalPresence();
  /** Users whose last socket in a room dropped, still present until their grace ends: room → user id → timer. */
  private readonly graces = new Map<string, Map<string, NodeJS.Timeout>>();
  /** Bytes of recent messages kept over all rooms. */
  private recentBytes = 0;

  constructor(
    private readonly store: ChatStore,
    private readonly metrics: Metrics,
    private readonly log: FastifyBaseLogger,
    private readonly presenceGraceMs = PRESENCE_GRACE_MS,
  ) {
    store.setListener(this);
  }

  /** Rooms with a member on this replica: each holds a feed subscription, so none may outlive its last member. */
  get size(): number {
    return this.rooms.size;
  }

  /**
   * Puts the member in the room and sends it `joined`. The room's feed is subscribed before
   * history is read, and live frames are held until `joined` is out, so nothing falls in between
   * and nothing is sent twice. Resolves false when the member left or re-joined meanwhile.
   */
  async join(member: Member, name: string, since: string | undefined): Promise<boolean> {
    const room = this.room(name);
    const membership: Membership = { pending: [], floor: null };
    const isNewMember = !room.members.has(member);
    room.members.set(member, membership);
    if (isNewMember && this.localPresence.add(name, member.user.id) && !this.endGrace(name, member.user.id)) {
      this.store.enter(name, member.user).catch((err: unknown) => this.onFailure(err, 'presence enter failed'));
    }

    try {
      await room.subscribed;
      let replay: Page | null = null;
      if (since !== undefined) {
        replay = this.recentAfter(room, since);
        if (!replay) {
          const missed = await this.store.after(name, since, RESUME_LIMIT.messages);
          replay = missed && pageOf(missed);
        }
      }
      const users = await this.roster(name, room);
      let page = replay;
      let joined = page && joinedFrame(name, page.json, users, true);
      if (!page || !joined || joined.length > RESUME_LIMIT.bytes) {
        page = pageOf((await this.store.before(name, undefined, LIMITS.joinMessages)).messages);
        joined = joinedFrame(name, page.json, users, false);
      }
      if (room.members.get(member) !== membership) return false;
      member.write(joined);
      membership.floor = page.lastId ?? (page === replay ? since! : null);
    } catch (err) {
      if (room.members.get(member) === membership) this.leave(member, name);
      throw err;
    }

    const held = membership.pending!;
    membership.pending = null;
    for (const { id, frame } of held) {
      if (this.writeTo(member, membership, id, frame)) this.metrics.messagesDelivered.inc();
    }
    return true;
  }

  has(member: Member, name: string): boolean {
    return this.rooms.get(name)?.members.has(member) ?? false;
  }

  leave(member: Member, name: string, how: Departure = 'left'): void {
    const room = this.rooms.get(name);
    if (!room?.members.delete(member)) return;
    if (this.localPresence.remove(name, member.user.id)) {
      if (how === 'dropped' && this.presenceGraceMs > 0) this.startGrace(name, member.user);
      else this.exit(name, member.user);
    }
    if (room.members.size === 0) {
      clearTimeout(room.presence?.timer);
      this.forgetRecent(room);
      this.rooms.delete(name);
      this.store.unsubscribe(name).catch((err: unknown) => this.onFailure(err, 'unsubscribe failed'));
    }
  }

  // The store's live feed.

  message(name: string, message: FeedMessage): void {
    const room = this.rooms.get(name);
    if (!room) return;
    if (room.replaying) room.replaying.push(message);
    else this.deliver(name, room, message);
  }

  private deliver(name: string, room: LocalRoom, message: FeedMessage): void {
    if (room.lastDeliveredId !== null && compareIds(message.id, room.lastDeliveredId) <= 0) return;
    room.lastDeliveredId = message.id;
    this.keepRecent(room, message);

    // One frame for every socket in the room: `M` as messageJson splices it, with the frame's
    // type and room in front.
    const frame = textFrame(`{"type":"message","room":"${name}",${messageJson(message).slice(1)}`);
    let written = 0;
    for (const [member, membership] of room.members) {
      if (this.writeTo(member, membership, message.id, frame)) written++;
    }
    this.metrics.messagesDelivered.inc(written);
    this.metrics.deliverySeconds.observe(Math.max(0, Date.now() - message.ts) / 1000);
  }

  /**
   * Presence changes are gathered per room for PRESENCE_BATCH_MS and sent as one frame. When many
   * people come and go at once (a reconnect storm, a replica restarting), each socket gets a few
   * frames instead of one per person. Someone who left and came back within the window (or the
   * other way round) cancels out. Presence is best-effort in the contract, so a short delay costs
   * nothing.
   */
  presence(name: string, change: PresenceChange): void {
    const room = this.rooms.get(name);
    if (!room) return;
    let batch = room.presence;
    if (!batch) {
      batch = room.presence = { joined: new Map(), left: new Map(), timer: setTimeout(() => this.flushPresence(name, room), PRESENCE_BATCH_MS) };
    }
    for (const user of change.joined) if (!batch.left.delete(user.id)) batch.joined.set(user.id, user);
    for (const user of change.left) if (!batch.joined.delete(user.id)) batch.left.set(user.id, user);
  }

  private flushPresence(name: string, room: LocalRoom): void {
    const batch = room.presence;
    room.presence = null;
    if (!batch || (batch.joined.size === 0 && batch.left.size === 0)) return;
    const joined = [...batch.joined.values()];
    const left = [...batch.left.values()];
    const frame = encode({ type: 'presence', room: name, joined, left });
    for (const [member, membership] of room.members) {
      let own = frame;
      // A socket's own arrival is already in its `joined.users`; on other replicas the change may
      // come in after that list was read, so it is filtered by who it is about, not by timing.
      if (batch.joined.has(member.user.id)) {
        const others = joined.filter((user) => user.id !== member.user.id);
        if (others.length === 0 && left.length === 0) continue;
        own = encode({ type: 'presence', room: name, joined: others, left });
      }
      if (membership.pending === null) member.write(own);
      else membership.pending.push({ id: null, frame: own });
    }
  }

  typing(name: string, user: User): void {
    const room = this.rooms.get(name);
    if (!room) return;
    const frame = encode({ type: 'typing', room: name, user });
    // Only to others, and never held for a joining socket: a stale "typing…" is worse than none.
    for (const [member, membership] of room.members) {
      if (member.user.id !== user.id && membership.pending === null) member.write(frame);
    }
  }

  /** The feed may have missed messages (Redis reconnected): replay every room from the store. */
  resync(): void {
    for (const [name, room] of this.rooms) void this.replay(name, room);
  }

  private async replay(name: string, room: LocalRoom): Promise<void> {
    if (room.replaying) return;
    room.replaying = [];
    let missed: ChatMessage[] | null = null;
    try {
      missed = await this.store.after(name, this.replayStart(room), RESUME_LIMIT.messages);
    } catch (err) {
      this.log.warn({ err, room: name }, 'replay after reconnect failed');
    }
    const held = room.replaying;
    room.replaying = null;
    if (missed === null) {
      // Cannot vouch for what was missed (too much, trimmed, or Redis lost it): every socket
      // resumes by itself, and gets resumed:false if need be.
      this.log.warn({ room: name, sockets: room.members.size }, 'restarting the sockets of a room after a gap in its feed');
      this.forgetRecent(room);
      for (const member of room.members.keys()) member.restart();
      return;
    }
    for (const message of missed) this.deliver(name, room, toFeed(message));
    for (const message of held) this.deliver(name, room, message);
  }

  /** The newest message every member of the room is known to have; null: none at all. */
  private replayStart(room: LocalRoom): string | null {
    if (room.lastDeliveredId !== null) return room.lastDeliveredId;
    let start: string | undefined;
    for (const membership of room.members.values()) {
      if (membership.pending !== null) continue; // its own join is still reading
      if (membership.floor === null) return null;
      if (start === undefined || compareIds(membership.floor, start) < 0) start = membership.floor;
    }
    return start ?? null;
  }

  readiness(): void {}

  /** Writes a frame to one member, holding it during a join and skipping what `joined` carried. */
  private writeTo(member: Member, membership: Membership, id: string | null, frame: Buffer): boolean {
    if (membership.pending !== null) {
      membership.pending.push({ id, frame });
      return false;
    }
    if (id !== null && membership.floor !== null) {
      if (compareIds(id, membership.floor) <= 0) return false;
      membership.floor = null;
    }
    member.write(frame);
    return id !== null;
  }

  /**
   * Who is present, as JSON, for a `joined` frame. Joins that ask while a read is under way share
   * the next read, which starts when that one is done: each still gets a list read after it asked
   * (so it includes the joiner), but a reconnect storm of a thousand joins costs a few reads of
   * the list and a few serialisations of it, not a thousand.
   */
  private roster(name: string, room: LocalRoom): Promise<string> {
    const roster = room.roster;
    if (roster.queued) return roster.queued;
    const read = (): Promise<string> => {
      const reading = this.store.present(name).then((users) => JSON.stringify(users));
      roster.reading = reading;
      const done = () => {
        if (roster.reading === reading) roster.reading = null;
      };
      reading.then(done, done);
      return reading;
    };
    if (!roster.reading) return read();
    const queued = roster.reading.then(noop, noop).then(() => {
      roster.queued = null;
      return read();
    });
    roster.queued = queued;
    return queued;
  }

  /** Users in their grace after a dropped socket, across rooms. */
  get graceCount(): number {
    let count = 0;
    for (const users of this.graces.values()) count += users.size;
    return count;
  }

  /** Stops the graces' timers; the store's own goodbye then lets everyone go at once. */
  close(): void {
    for (const users of this.graces.values()) for (const timer of users.values()) clearTimeout(timer);
    this.graces.clear();
  }

  private exit(name: string, user: User): void {
    this.store.exit(name, user).catch((err: unknown) => this.onFailure(err, 'presence exit failed'));
  }

  private startGrace(name: string, user: User): void {
    let users = this.graces.get(name);
    if (!users) {
      users = new Map();
      this.graces.set(name, users);
    }
    const timer = setTimeout(() => {
      if (this.endGrace(name, user.id)) this.exit(name, user);
    }, this.presenceGraceMs);
    timer.unref();
    users.set(user.id, timer);
  }

  /** Ends a user's grace in a room, if one is running; true when it was (they are still present). */
  private endGrace(name: string, userId: string): boolean {
    const users = this.graces.get(name);
    const timer = users?.get(userId);
    if (!users || timer === undefined) return false;
    clearTimeout(timer);
    users.delete(userId);
    if (users.size === 0) this.graces.delete(name);
    return true;
  }

  /**
   * Everything after `since` from the room's recent messages, when `since` is one of them; null
   * sends the join to the store. Never while the feed may have a gap (Redis away, or a replay
   * under way): the store then answers, or refuses.
   */
  private recentAfter(room: LocalRoom, since: string): Page | null {
    if (room.replaying !== null || !this.store.readiness().ready) return null;
    const recent = room.recent;
    let at = recent.length - 1; // from the newest: a resume has usually missed little
    while (at >= 0 && recent[at]!.id !== since) at--;
    if (at < 0) return null;
    const after = recent.slice(at + 1);
    return { json: `[${after.map(messageJson).join(',')}]`, lastId: after.at(-1)?.id };
  }

  private keepRecent(room: LocalRoom, message: FeedMessage): void {
    const size = sizeOf(message);
    if (this.recentBytes + size > RECENT_LIMIT.totalBytes) {
      this.forgetRecent(room); // kept recent messages may have no gap: start again later
      return;
    }
    room.recent.push(message);
    room.recentBytes += size;
    this.recentBytes += size;
    while (room.recent.length > RECENT_LIMIT.messages || room.recentBytes > RECENT_LIMIT.bytes) {
      const dropped = sizeOf(room.recent.shift()!);
      room.recentBytes -= dropped;
      this.recentBytes -= dropped;
    }
  }

  private forgetRecent(room: LocalRoom): void {
    this.recentBytes -= room.recentBytes;
    room.recent = [];
    room.recentBytes = 0;
  }

  private room(name: string): LocalRoom {
    let room = this.rooms.get(name);
    if (!room) {
      const subscribed = this.store.subscribe(name);
      subscribed.catch(() => {}); // awaited by each join, which reports the failure
      room = {
        members: new Map(),
        subscribed,
        lastDeliveredId: null,
        replaying: null,
        presence: null,
        roster: { reading: null, queued: null },
        recent: [],
        recentBytes: 0,
      };
      this.rooms.set(name, room);
    }
    return room;
  }

  private onFailure(err: unknown, what: string): void {
    this.log.warn({ err }, what);
  }
}
