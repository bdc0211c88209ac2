// A real `ws` client that records every frame, so a test can wait for the one it expects.
import { WebSocket, type ClientOptions } from 'ws';
import type { ClientFrame, ServerFrame } from '../../src/server/chat/protocol';

type Frame = ServerFrame & Record<string, unknown>;
type Match = (frame: Frame) => boolean;

/** How long a test waits for an expected frame before failing (a bound, not an assertion). */
const WAIT_MS = 5000;

export class TestClient {
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private cursor = 0;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()) as Frame);
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        this.wake();
        resolve({ code, reason: reason.toString() });
      });
    });
    socket.on('error', () => {});
  }

  /** Opens a socket and waits for `welcome`. */
  static async connect(url: string, token: string | null, options: ClientOptions = {}): Promise<TestClient> {
    const target = token === null ? url : `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
    const client = new TestClient(new WebSocket(target, options));
    await client.next((f) => f.type === 'welcome');
    return client;
  }

  /** Resolves with the HTTP status of a refused upgrade (or 101 if it was accepted). */
  static async upgradeStatus(url: string, options: ClientOptions = {}): Promise<number> {
    return (await TestClient.upgradeAnswer(url, options)).status;
  }

  /** The status and body of a refused upgrade (or 101 and no body if it was accepted). */
  static upgradeAnswer(url: string, options: ClientOptions = {}): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, options);
      socket.on('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body });
          socket.terminate();
        });
      });
      socket.on('open', () => {
        resolve({ status: 101, body: '' });
        socket.close();
      });
      socket.on('error', (err) => {
        if (!/Unexpected server response/.test(err.message)) reject(err);
      });
    });
  }

  send(frame: ClientFrame | Record<string, unknown>): void {
    this.socket.send(JSON.stringify(frame));
  }

  sendRaw(data: string | Buffer, options: { binary?: boolean } = {}): void {
    this.socket.send(data, options);
  }

  /** The next frame after the last one taken that matches; frames skipped over stay readable in `frames`. */
  next(match: Match = () => true, waitMs = WAIT_MS): Promise<Frame> {
    return this.waitFor(() => {
      while (this.cursor < this.frames.length) {
        const frame = this.frames[this.cursor++]!;
        if (match(frame)) return frame;
      }
      return undefined;
    }, waitMs);
  }

  /** The first frame received at any time that matches, waiting for it if need be. */
  seen(match: Match, waitMs = WAIT_MS): Promise<Frame> {
    return this.waitFor(() => this.frames.find(match), waitMs);
  }

  private async waitFor(find: () => Frame | undefined, waitMs: number): Promise<Frame> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const found = find();
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0 || this.socket.readyState === WebSocket.CLOSED) {
        throw new Error(`no matching frame within ${waitMs} ms; last frames: ${JSON.stringify(this.frames.slice(-3))}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Joins and returns the `joined` frame. */
  async join(room: string, since?: string): Promise<Frame> {
    this.send(since === undefined ? { type: 'join', room } : { type: 'join', room, since });
    return this.next((f) => f.type === 'joined' && f.room === room);
  }

  /** Sends a message and waits for its ack. */
  async say(room: string, text: string, clientId: string, waitMs = WAIT_MS): Promise<Frame> {
    // Searched from this send on, apart from the shared cursor, so concurrent says cannot skip
    // each other's answers, and an earlier answer to the same clientId (a retry) is not reused.
    const from = this.frames.length;
    this.send({ type: 'send', room, text, clientId });
    const answers = (f: Frame) =>
      (f.type === 'ack' && f.clientId === clientId) || (f.type === 'error' && f.ref.clientId === clientId);
    return this.waitFor(() => {
      for (let i = from; i < this.frames.length; i++) if (answers(this.frames[i]!)) return this.frames[i];
      return undefined;
    }, waitMs);
  }

  /** Every `message` frame received so far for a room. */
  messages(room: string): Frame[] {
    return this.frames.filter((f) => f.type === 'message' && f.room === room);
  }

  /** Gives other sockets time to deliver: a round trip through the server and back. */
  async settle(): Promise<void> {
    const probe = `settle-${Math.random().toString(36).slice(2)}`;
    this.send({ type: 'leave', room: probe });
    await this.next((f) => f.type === 'left' && f.room === probe);
  }

  close(): void {
    this.socket.close();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
