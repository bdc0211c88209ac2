// The whole HTTP and WebSocket app, built but not listening: main.ts and the tests build it the
// same way.
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { gateway, type Gateway } from './chat/gateway';
import { LIMITS } from './chat/protocol';
import { RoomHub } from './chat/rooms';
import type { Config } from './config';
import { handleError, handleNotFound } from './errors';
import { createMetrics, type Metrics } from './metrics';
import { createSessions, sessionRoutes } from './session';
import { MemoryStore } from './store/memory';
import { RedisStore } from './store/redis';
import type { ChatStore } from './store/store';
import { addSecurityHeaders, web } from './web';

export interface AppDeps {
  logger: FastifyBaseLogger;
  /** Identifies this process to clients (the `welcome` frame) and to other replicas. */
  replicaId: string;
  /** The built client (dist/public). */
  publicDir: string;
  /** Defaults to the store the config asks for. */
  store?: ChatStore;
  /** Defaults to the contract's 30 s; tests shorten it. */
  heartbeatMs?: number;
  /** How long a dropped user stays present (rooms.ts, PRESENCE_GRACE_MS); tests shorten it. */
  presenceGraceMs?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    chat: { readonly gateway: Gateway; readonly hub: RoomHub; readonly store: ChatStore; readonly metrics: Metrics };
  }
}

const ROOMS_LISTED = 100;

export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  if (config.sessionSecret === undefined) throw new Error('buildApp needs config.sessionSecret');
  const store = deps.store ?? createStore(config, deps);
  const metrics = createMetrics();
  const sessions = createSessions(config.sessionSecret, config.sessionTtlMs);

  const app = Fastify({
    loggerInstance: deps.logger,
    trustProxy: config.trustProxy.length > 0 ? [...config.trustProxy] : false,
    // Nothing we serve needs a large body; the WebSocket has its own limit.
    bodyLimit: 64 * 1024,
    return503OnClosing: true,
  });
  app.setErrorHandler(handleError);
  app.setNotFoundHandler(handleNotFound);
  addSecurityHeaders(app);

  await app.register(fastifyWebsocket, {
    options: { maxPayload: LIMITS.maxFrameBytes },
    errorHandler(err, socket) {
      // What the wsHandler itself throws; once a socket is open, Connection handles its errors.
      app.log.debug({ err }, 'socket error');
      socket.terminate();
    },
  });

  const hub = new RoomHub(store, metrics, app.log, deps.presenceGraceMs);
  app.addHook('onClose', async () => {
    hub.close(); // first, so no grace ends against a store that is saying goodbye
    await store.close();
  });
  const chatGateway = await gateway(app, {
    hub,
    store,
    sessions,
    metrics,
    replicaId: deps.replicaId,
    allowedOrigins: config.allowedOrigins,
    maxMessageLength: config.maxMessageLength,
    maxSocketsPerUser: config.maxSocketsPerUser,
    maxSocketsPerIp: config.maxSocketsPerIp,
    heartbeatMs: deps.heartbeatMs ?? 30_000,
  });
  app.decorate('chat', { gateway: chatGateway, hub, store, metrics });

  await app.register(sessionRoutes, { sessions, sessionsPerMinute: config.sessionsPerMinute });

  app.get('/api/rooms', async () => ({ rooms: await store.rooms(ROOMS_LISTED) }));

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    if (chatGateway.draining) return reply.code(503).send({ status: 'not_ready', reason: 'draining' });
    const { ready, reason } = store.readiness();
    if (!ready) return reply.code(503).send({ status: 'not_ready', reason: reason ?? 'store not ready' });
    return { status: 'ready' };
  });

  app.get('/metrics', async (_request, reply) => {
    metrics.redisConnected.set(store.kind === 'redis' && store.readiness().ready ? 1 : 0);
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  await app.register(web, { publicDir: deps.publicDir });
  return app;
}

function createStore(config: Config, deps: AppDeps): ChatStore {
  if (config.redisUrl === undefined) return new MemoryStore({ historyLimit: config.historyLimit, maxRooms: config.maxRooms });
  const store = new RedisStore({
    url: config.redisUrl,
    historyLimit: config.historyLimit,
    replicaId: deps.replicaId,
    log: deps.logger,
  });
  store.start();
  return store;
}
