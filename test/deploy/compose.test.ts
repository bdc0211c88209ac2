// compose.yaml as `docker-compose config` (Debian's docker-compose) resolves it: valid, scalable
// (no host ports or container_name on app), persistent, health-checked, and loud about a missing secret.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SECRET = 'x'.repeat(40);

function composeConfig(env: Record<string, string>) {
  return spawnSync('docker-compose', ['--file', 'compose.yaml', 'config'], {
    cwd: REPO,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

interface Service {
  image?: string;
  build?: unknown;
  ports?: Array<{ published: number; target: number; protocol?: string }>;
  container_name?: string;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  restart?: string;
  stop_grace_period?: string;
  command?: string[];
  volumes?: string[];
}

test('docker-compose config accepts compose.yaml and it has the shape --scale needs', () => {
  const result = composeConfig({ SESSION_SECRET: SECRET });
  assert.equal(result.status, 0, result.stderr);
  const config = parse(result.stdout) as { services: Record<string, Service>; volumes: Record<string, unknown> };
  const { app, redis, caddy } = config.services as Record<'app' | 'redis' | 'caddy', Service>;

  assert.ok(app.build, 'app is built from the Dockerfile');
  assert.equal(app.ports, undefined, 'app publishes no host ports');
  assert.equal(app.container_name, undefined, 'app has no fixed name');
  assert.equal(app.environment?.REDIS_URL, 'redis://redis:6379');
  assert.equal(app.environment?.SESSION_SECRET, SECRET);
  assert.deepEqual(app.depends_on?.redis, { condition: 'service_healthy' });
  assert.ok(app.restart);
  // Longer than the server's own 10 s drain, so Docker never SIGKILLs a draining replica.
  assert.ok(Number.parseInt(app.stop_grace_period ?? '0', 10) > 10, 'stop_grace_period > 10s');

  assert.match(redis.image ?? '', /^redis:/);
  assert.ok(redis.healthcheck?.test.includes('redis-cli'));
  assert.deepEqual(redis.command?.slice(1), ['--appendonly', 'yes', '--appendfsync', 'always']);
  assert.ok(redis.volumes?.some((v) => v.startsWith('redis-data:/data')));
  assert.equal(redis.ports, undefined, 'redis is not published');

  assert.match(caddy.image ?? '', /^caddy:2/);
  assert.deepEqual(
    caddy.ports?.map((p) => `${p.published}:${p.target}/${p.protocol ?? 'tcp'}`).sort(),
    ['443:443/tcp', '443:443/udp', '80:80/tcp'],
  );
  assert.equal(caddy.environment?.DOMAIN, 'localhost', 'DOMAIN defaults to localhost');
  assert.ok(caddy.volumes?.some((v) => /\/Caddyfile:\/etc\/caddy\/Caddyfile:ro$/.test(v)), 'the repository Caddyfile');
  assert.ok(caddy.volumes?.some((v) => v.startsWith('caddy-data:/data')));
  assert.ok(caddy.volumes?.some((v) => v.startsWith('caddy-config:/config')));
  assert.deepEqual(Object.keys(config.volumes).sort(), ['caddy-config', 'caddy-data', 'redis-data']);

  const withDomain = parse(composeConfig({ SESSION_SECRET: SECRET, DOMAIN: 'chat.example.com' }).stdout);
  assert.equal(withDomain.services.caddy.environment.DOMAIN, 'chat.example.com');
});

test('without SESSION_SECRET, compose refuses to start and says what to set', () => {
  const result = composeConfig({});
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /set SESSION_SECRET to a random string of at least 32 characters/);
});
