// Builds the app exactly as main.ts does, listening on a free port, closed after the test.
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppDeps } from '../../src/server/app';
import { loadConfig, type Config } from '../../src/server/config';
import { createLogger } from '../../src/server/logger';
import type { User } from '../../src/server/chat/protocol';

export const PUBLIC_DIR = fileURLToPath(new URL('../../dist/public/', import.meta.url));
export const TEST_SECRET = 'test-secret-that-is-at-least-32-characters-long';

export interface TestApp {
  app: FastifyInstance;
  config: Config;
  /** http://127.0.0.1:port */
  url: string;
  /** ws://127.0.0.1:port/ws */
  wsUrl: string;
  /** Starts a session through the real API. */
  signIn(name: string): Promise<{ user: User; token: string }>;
}

export async function build(
  t: TestContext,
  env: Record<string, string> = {},
  deps: Partial<AppDeps> = {},
): Promise<TestApp> {
  // Every test client signs in from 127.0.0.1; the security suite tests the default limit.
  const config = loadConfig({ SESSION_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', SESSIONS_PER_MINUTE: '100000', ...env });
  const app = await buildApp(config, {
    logger: createLogger(config.logLevel),
    replicaId: 'test-replica',
    publicDir: PUBLIC_DIR,
    ...deps,
  });
  t.after(() => app.close());
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  const url = `http://127.0.0.1:${address.port}`;
  return {
    app,
    config,
    url,
    wsUrl: `ws://127.0.0.1:${address.port}/ws`,
    async signIn(name) {
      const response = await app.inject({ method: 'POST', url: '/api/session', payload: { name } });
      if (response.statusCode !== 200) throw new Error(`sign-in failed: ${response.body}`);
      return response.json();
    },
  };
}
