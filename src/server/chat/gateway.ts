// The /ws endpoint: who may open a socket (session and origin), the heartbeat that drops dead
// peers, and the drain that closes every socket with 1012 on shutdown.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WebSocket } from 'ws';
import { errorBody } from '../errors';
import type { Metrics } from '../metrics';
import { tokenOf, type Session, type Sessions } from '../session';
import type { ChatStore } from '../store/store';
import { Connection } from './connection';
import { CLOSE } from './protocol';
import type { RoomHub } from './rooms';

export interface GatewayOptions {
  hub: RoomHub;
  store: ChatStore;
  sessions: Sessions;
  metrics: Metrics;
  replicaId: string;
  allowedOrigins: readonly string[];
  maxMessageLength: number;
  maxSocketsPerUser: number;
  maxSocketsPerIp: number;
  heartbeatMs: number;
}

export interface Gateway {
  readonly connections: ReadonlySet<Connection>;
  /** Sockets (and handshakes) held per user id and per client IP, for the caps. */
  readonly socketsPerUser: ReadonlyMap<string, number>;
  readonly socketsPerIp: ReadonlyMap<string, number>;
  /** True from the start of a drain: no new sockets, and /readyz answers 503. */
  readonly draining: boolean;
  /** Closes every socket with 1012; resolves once all are gone or cut. */
  drain(graceMs: number): Promise<void>;
}

/** The heartbeat pings a tenth of the sockets every tenth of its interval. */
const HEARTBEAT_SLICES = 10;

declare module 'fastify' {
  interface FastifyRequest {
    session: Session | null;
  }
}

export async function gateway(app: FastifyInstance, options: GatewayOptions): Promise<Gateway> {
  const connections = new Set<Connection>();
  const socketsPerUser = new Counts();
  const socketsPerIp = new Counts();
  let draining = false;
  const { hub, store, sessions, metrics } = options;
  const connectionDeps = { hub, store, metrics, log: app.log, maxMessageLength: options.maxMessageLength };
  /** The response each admitted upgrade was routed with, to let go of it once the socket is open. */
  const upgradeResponses = new WeakMap<IncomingMessage, ServerResponse>();

  // Each socket is pinged once per heartbeatMs, by slices of the sockets spread over it: ten
  // thousand sockets are never pinged in one burst that every message would wait behind.
  const pingSlices = Array.from({ length: HEARTBEAT_SLICES }, () => new Set<Connection>());
  let nextSlice = 0;
  let tick = 0;
  const heartbeat = setInterval(() => {
    for (const connection of pingSlices[tick++ % HEARTBEAT_SLICES]!) {
      if (connection.alive) connection.ping();
      else connection.terminate();
    }
  }, options.heartbeatMs / HEARTBEAT_SLICES);
  heartbeat.unref();
  app.addHook('onClose', async () => clearInterval(heartbeat));

  app.decorateRequest('session', null);

  async function admit(request: FastifyRequest, reply: FastifyReply) {
    if (draining) {
      return reply.code(503).send(errorBody('draining', 'this server is restarting; connect again'));
    }
    const origin = request.headers.origin;
    if (origin !== undefined && !isAllowedOrigin(origin, request.headers.host, options.allowedOrigins)) {
      return reply.code(403).send(errorBody('forbidden_origin', 'this origin may not open a chat socket'));
    }
    request.session = sessions.verify(tokenOf(request, true));
    if (!request.session) {
      return reply.code(401).send(errorBody('unauthorized', 'no valid session; POST /api/session to start one'));
    }
    if (request.headers.upgrade?.toLowerCase() !== 'websocket') return; // answered 426 below
    const userId = request.session.user.id;
    if ((socketsPerUser.get(userId) ?? 0) >= options.maxSocketsPerUser) {
      return reply.code(429).send(errorBody('too_many_sockets', `this user already has ${options.maxSocketsPerUser} open sockets here; close one first`));
    }
    if ((socketsPerIp.get(request.ip) ?? 0) >= options.maxSocketsPerIp) {
      return reply.code(429).send(errorBody('too_many_sockets', `this address already has ${options.maxSocketsPerIp} open sockets here`));
    }
    // Counted from the handshake on, so a burst of upgrades cannot slip past the cap; the TCP
    // connection closing (handshake failed, or the socket ended) is what releases the place.
    // The listener keeps only the two keys, not the request, alive for the socket's lifetime.
    const ip = request.ip;
    socketsPerUser.add(userId);
    socketsPerIp.add(ip);
    request.raw.socket.once('close', () => {
      socketsPerUser.remove(userId);
      socketsPerIp.remove(ip);
    });
    upgradeResponses.set(request.raw, reply.raw);
  }

  app.route({
    method: 'GET',
    url: '/ws',
    preValidation: admit,
    handler: async (_request, reply) =>
      reply.code(426).send(errorBody('upgrade_required', 'this endpoint speaks WebSocket')),
    wsHandler: (socket: WebSocket, request: FastifyRequest) => {
      letGoOfUpgrade(socket, request.raw, upgradeResponses.get(request.raw));
      const user = request.session!.user;
      const connection = new Connection(socket, request.raw.socket, user, connectionDeps);
      const pingSlice = pingSlices[nextSlice++ % HEARTBEAT_SLICES]!;
      connections.add(connection);
      pingSlice.add(connection);
      metrics.connections.inc();
      socket.once('close', () => {
        connections.delete(connection);
        pingSlice.delete(connection);
        metrics.connections.dec();
      });
      connection.send({ type: 'welcome', user, replica: options.replicaId });
    },
  });

  return {
    connections,
    socketsPerUser,
    socketsPerIp,
    get draining() {
      return draining;
    },
    async drain(graceMs) {
      draining = true;
      for (const connection of connections) connection.close(CLOSE.restarting, 'server restarting');
      const deadline = Date.now() + graceMs;
      while (connections.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
      for (const connection of connections) connection.terminate();
    },
  };
}

/**
 * @fastify/websocket routes an upgrade with a ServerResponse that never finishes. It stays
 * assigned to the TCP socket, and the plugin's 'error' listener on the WebSocket holds it with the
 * request, the reply and their headers and logger: about 3 KB a socket, for the socket's whole
 * life. Once the socket is open none of it is needed; Connection handles the socket's errors.
 */
function letGoOfUpgrade(socket: WebSocket, request: IncomingMessage, response: ServerResponse | undefined): void {
  socket.removeAllListeners('error');
  response?.detachSocket(request.socket);
}

/** The page's own origin (same host as the request) or one listed in ALLOWED_ORIGINS. */
export function isAllowedOrigin(origin: string, host: string | undefined, allowed: readonly string[]): boolean {
  if (allowed.includes(origin)) return true;
  try {
    return host !== undefined && new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

/** How many of something each key holds; keys at zero are forgotten. */
class Counts extends Map<string, number> {
  add(key: string): void {
    this.set(key, (this.get(key) ?? 0) + 1);
  }

  remove(key: string): void {
    const left = (this.get(key) ?? 0) - 1;
    if (left > 0) this.set(key, left);
    else this.delete(key);
  }
}
