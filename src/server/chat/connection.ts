// One socket: parse, validate, rate-limit and dispatch its frames. Nothing a client sends can
// throw out of here; every refusal is an `error` frame that names the frame it refuses.
import type { FastifyBaseLogger } from 'fastify';
import type { Socket } from 'node:net';
import { WebSocket, type RawData } from 'ws';
import type { Metrics } from '../metrics';
import { StoreLimitError, type ChatStore } from '../store/store';
import {
  CLOSE,
  LIMITS,
  parseClientFrame,
  type ErrorCode,
  type FrameRef,
  type HistoryFrame,
  type JoinFrame,
  type SendFrame,
  type ServerFrame,
  type User,
} from './protocol';
import { RATES, TokenBucket } from '../ratelimit';
import { coalesceWrites } from './coalesce';
import { encode, type Member, type RoomHub } from './rooms';

/** Unsent output beyond which a socket is too slow to keep (contract: 1 MiB). */
export const MAX_BUFFERED_BYTES = 1024 * 1024;
/** How long a socket we closed may take to finish the closing handshake. */
const CLOSE_GRACE_MS = 5000;

export interface ConnectionDeps {
  hub: RoomHub;
  store: ChatStore;
  metrics: Metrics;
  log: FastifyBaseLogger;
  maxMessageLength: number;
}

export class Connection implements Member {
  /** Cleared by the heartbeat before each ping, set by the pong. */
  alive = true;
  private readonly rooms = new Set<string>();
  private readonly lastTypingAt = new Map<string, number>();
  private readonly frames: TokenBucket;
  private readonly sends: TokenBucket;
  private readonly refusals: TokenBucket;
  private closing = false;
  private closeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: WebSocket,
    /** The TCP socket under `socket`, corked to coalesce writes. */
    private readonly transport: Socket,
    readonly user: User,
    private readonly deps: ConnectionDeps,
  ) {
    const now = Date.now();
    this.frames = new TokenBucket(RATES.frames.capacity, RATES.frames.perSecond, now);
    this.sends = new TokenBucket(RATES.sends.capacity, RATES.sends.perSecond, now);
    this.refusals = new TokenBucket(RATES.refusals.capacity, RATES.refusals.perSecond, now);
    // Handlers go on before anything else can happen, so no frame is ever missed.
    socket.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    socket.on('pong', () => {
      this.alive = true;
    });
    socket.on('close', () => this.onClose());
    socket.on('error', (err) => {
      // A peer vanishing mid-frame is routine; any error ends only this socket.
      deps.log.debug({ err }, 'socket error');
      socket.terminate();
    });
  }

  /** True once this side started closing (or the peer went). */
  get isClosing(): boolean {
    return this.closing;
  }

  /** Bytes accepted for this peer and not yet handed to the kernel. */
  get buffered(): number {
    return this.socket.bufferedAmount;
  }

  write(frame: Buffer): void {
    if (this.closing || this.socket.readyState !== WebSocket.OPEN) return;
    // Judged on what is already waiting, so one large frame (a resume) never trips it by itself.
    if (this.socket.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.deps.log.info({ user: this.user.id, buffered: this.socket.bufferedAmount }, 'closing a socket that reads too slowly');
      this.close(CLOSE.tooSlow, 'too slow: reconnect and resume');
      return;
    }
    // Framed already (see wire.ts), so it goes straight to the TCP socket. ws writes its own
    // control frames (ping, close) to the same socket, each whole, so they never interleave.
    coalesceWrites(this.transport);
    this.transport.write(frame);
  }

  send(frame: ServerFrame): void {
    this.write(encode(frame));
  }

  /** Closes with a code, and cuts the socket if the peer does not finish the handshake in time. */
  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.close(code, reason);
    this.closeTimer = setTimeout(() => this.socket.terminate(), CLOSE_GRACE_MS);
    this.closeTimer.unref();
  }

  restart(): void {
    this.close(CLOSE.restarting, 'reconnect and resume');
  }

  /** Cuts the socket without a handshake (a peer that stopped answering pings). */
  terminate(): void {
    this.socket.terminate();
  }

  ping(): void {
    this.alive = false;
    this.socket.ping();
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closing) return;
    if (isBinary) {
      this.close(CLOSE.binary, 'frames must be JSON text');
      return;
    }
    try {
      const parsed = parseClientFrame(data.toString(), this.deps.maxMessageLength);
      const retryAfterMs = this.frames.take(Date.now());
      if (retryAfterMs > 0) {
        this.refuse('rate_limited', 'too many frames: slow down', parsed.ok ? refOf(parsed.frame) : parsed.ref, retryAfterMs);
        return;
      }
      if (!parsed.ok) {
        this.refuse(parsed.code, parsed.message, parsed.ref);
        return;
      }
      const frame = parsed.frame;
      switch (frame.type) {
        case 'join':
          this.join(frame);
          return;
        case 'leave':
          this.leave(frame.room);
          return;
        case 'send':
          this.sendMessage(frame);
          return;
        case 'history':
          this.history(frame);
          return;
        case 'typing':
          this.typing(frame.room);
          return;
      }
    } catch (err) {
      // A bug, not the client's fault: keep the socket and the process.
      this.deps.log.error({ err }, 'frame handler failed');
    }
  }

  private join(frame: JoinFrame): void {
    const { room } = frame;
    if (!this.rooms.has(room) && this.rooms.size >= LIMITS.maxRoomsPerSocket) {
      this.refuse('limit_exceeded', `a socket may be in at most ${LIMITS.maxRoomsPerSocket} rooms`, refOf(frame));
      return;
    }
    this.rooms.add(room);
    this.deps.hub.join(this, room, frame.since).catch((err: unknown) => {
      if (!this.deps.hub.has(this, room)) this.rooms.delete(room);
      this.deps.log.warn({ err, room }, 'join failed');
      this.refuse('unavailable', 'the room could not be joined right now; try again', refOf(frame));
    });
  }

  private leave(room: string): void {
    if (this.rooms.delete(room)) this.deps.hub.leave(this, room);
    this.send({ type: 'left', room });
  }

  private sendMessage(frame: SendFrame): void {
    const { room, text, clientId } = frame;
    if (!this.rooms.has(room)) {
      this.refuse('not_joined', 'join the room before sending to it', refOf(frame));
      return;
    }
    const retryAfterMs = this.sends.take(Date.now());
    if (retryAfterMs > 0) {
      this.refuse('rate_limited', 'you are sending messages too fast', refOf(frame), retryAfterMs);
      return;
    }
    this.deps.store.append(room, this.user, text, clientId).then(
      ({ id, duplicate }) => {
        if (!duplicate) this.deps.metrics.messagesReceived.inc();
        this.send({ type: 'ack', room, clientId, id });
      },
      (err: unknown) => {
        if (err instanceof StoreLimitError) {
          this.refuse('limit_exceeded', err.message, refOf(frame));
          return;
        }
        this.deps.log.warn({ err, room }, 'message could not be stored');
        this.refuse('unavailable', 'the message was not stored; send it again with the same clientId', refOf(frame));
      },
    );
  }

  private history(frame: HistoryFrame): void {
    const { room, before, limit } = frame;
    if (!this.rooms.has(room)) {
      this.refuse('not_joined', 'join the room before reading its history', refOf(frame));
      return;
    }
    this.deps.store.before(room, before, limit).then(
      ({ messages, hasMore }) => this.send({ type: 'history', room, messages, hasMore }),
      (err: unknown) => {
        this.deps.log.warn({ err, room }, 'history could not be read');
        this.refuse('unavailable', 'history could not be read right now; try again', refOf(frame));
      },
    );
  }

  private typing(room: string): void {
    if (!this.rooms.has(room)) {
      this.refuse('not_joined', 'join the room before typing in it', { type: 'typing', room });
      return;
    }
    // Clients send this at most every 2 s; anything faster is dropped, not refused.
    const now = Date.now();
    if (now - (this.lastTypingAt.get(room) ?? 0) < LIMITS.typingIntervalMs / 2) return;
    this.lastTypingAt.set(room, now);
    this.deps.store.typing(room, this.user);
  }

  private refuse(code: ErrorCode, message: string, ref: FrameRef, retryAfterMs?: number): void {
    this.deps.metrics.error(code);
    this.send(retryAfterMs === undefined ? { type: 'error', code, message, ref } : { type: 'error', code, message, ref, retryAfterMs });
    if (code === 'rate_limited' && this.refusals.take(Date.now()) > 0) {
      this.deps.log.info({ user: this.user.id }, 'closing a flooding socket');
      this.close(CLOSE.policy, 'flooding');
    }
  }

  private onClose(): void {
    this.closing = true;
    clearTimeout(this.closeTimer);
    for (const room of this.rooms) this.deps.hub.leave(this, room, 'dropped');
    this.rooms.clear();
  }
}

function refOf(frame: { type: string; room: string; clientId?: string }): FrameRef {
  return frame.clientId === undefined
    ? { type: frame.type, room: frame.room }
    : { type: frame.type, room: frame.room, clientId: frame.clientId };
}
