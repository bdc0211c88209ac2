// The process: read config, make the logger and the store, listen, and drain on SIGTERM.
// Bundled by build.mjs into dist/server.js.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { buildApp } from './app';
import { ConfigError, loadConfig, type Config } from './config';
import { createLogger } from './logger';

/** The contract: exit within 10 s of SIGTERM. Sockets get 3 s to close, the rest is margin. */
const SOCKET_CLOSE_GRACE_MS = 3000;
const HARD_STOP_MS = 9000;

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`chatter: invalid configuration: ${err.message}\n`);
    process.exit(1);
  }

  const logger = createLogger(config.logLevel);
  if (config.sessionSecret === undefined) {
    config = { ...config, sessionSecret: randomBytes(32).toString('base64url') };
    logger.warn('SESSION_SECRET is not set: using a random one, so sessions end when this process stops');
  }
  if (config.redisUrl === undefined) {
    logger.info('embedded mode: history is kept in memory and lost when this process stops (set REDIS_URL to keep it)');
  }

  const replicaId = `${hostname()}-${randomBytes(3).toString('hex')}`;
  const app = await buildApp(config, {
    logger,
    replicaId,
    publicDir: fileURLToPath(new URL('./public/', import.meta.url)),
  });

  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, sockets: app.chat.gateway.connections.size }, 'draining');
    setTimeout(() => {
      logger.error('drain did not finish in time; exiting anyway');
      process.exit(1);
    }, HARD_STOP_MS).unref();
    await app.chat.gateway.drain(SOCKET_CLOSE_GRACE_MS);
    await app.close();
    logger.info('stopped');
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // Every handler catches its own failures; one that slips through is a bug to log, not a reason
  // to drop every socket on this process.
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));

  await app.listen({ port: config.port, host: config.host });
  logger.info({ replica: replicaId, store: app.chat.store.kind }, 'chatter is ready');
}

main().catch((err: unknown) => {
  process.stderr.write(`chatter: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
