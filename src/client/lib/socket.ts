// The transport: one WebSocket to /ws that comes back by itself. Reconnects use exponential
// backoff with full jitter, so a restarted server is not hit by every client in the same instant.
import type { ClientFrame, ServerFrame } from '../../server/chat/protocol';

export type ConnectionStatus = 'connecting' | 'online' | 'offline';

export interface SocketEvents {
  status(status: ConnectionStatus, retryAt: number | null): void;
  frame(frame: ServerFrame): void;
  /** The socket closed; `code` is the server's reason (1012 restart, 1013 too slow, …). */
  closed(code: number): void;
}

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 15_000;

export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt));
}

export class ChatSocket {
  private socket: WebSocket | null = null;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(
    private readonly url: string,
    private readonly events: SocketEvents,
  ) {
    addEventListener('online', this.reconnectNow);
  }

  connect(): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.events.status('connecting', null);
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.onmessage = (event) => {
      let frame: ServerFrame;
      try {
        frame = JSON.parse(event.data as string) as ServerFrame;
      } catch {
        return;
      }
      if (frame.type === 'welcome') {
        this.attempt = 0;
        this.events.status('online', null);
      }
      this.events.frame(frame);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.events.closed(event.code);
      this.scheduleReconnect();
    };
  }

  /** Sends a frame if the socket is open; returns false when it is not (the caller keeps it). */
  send(frame: ClientFrame): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  get isOpen(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /** Skips the wait (a "retry now" button, or the browser coming back online). */
  reconnectNow = (): void => {
    if (this.stopped || this.socket) return;
    this.attempt = 0;
    this.connect();
  };

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    removeEventListener('online', this.reconnectNow);
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000);
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt++);
    this.events.status('offline', Date.now() + delay);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}

export function socketUrl(location: Location): string {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
}
