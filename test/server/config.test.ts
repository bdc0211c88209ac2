import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/server/config';

const SECRET = 'x'.repeat(32);

function problem(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${JSON.stringify(env)} to be refused`);
}

test('defaults match the contract', () => {
  const config = loadConfig({});
  assert.equal(config.port, 3000);
  assert.equal(config.host, '0.0.0.0');
  assert.equal(config.redisUrl, undefined);
  assert.equal(config.sessionSecret, undefined);
  assert.equal(config.sessionTtlMs, 30 * 86_400_000);
  assert.deepEqual(config.allowedOrigins, []);
  assert.deepEqual(config.trustProxy, ['loopback', 'uniquelocal']);
  assert.equal(config.logLevel, 'info');
  assert.equal(config.maxMessageLength, 2000);
  assert.equal(config.historyLimit, 10_000);
  assert.equal(config.sessionsPerMinute, 30);
  assert.equal(config.maxSocketsPerUser, 20);
  assert.equal(config.maxSocketsPerIp, 500);
  assert.equal(config.maxRooms, 10_000);
  assert.ok(Object.isFrozen(config));
});

test('every variable is read', () => {
  const config = loadConfig({
    PORT: '8080',
    HOST: '127.0.0.1',
    REDIS_URL: 'rediss://user:pw@redis.internal:6380/0',
    SESSION_SECRET: SECRET,
    SESSION_TTL: '12h',
    ALLOWED_ORIGINS: 'https://a.example, http://localhost:5173',
    TRUST_PROXY: '10.0.0.0/8,::1,loopback',
    LOG_LEVEL: 'debug',
    MAX_MESSAGE_LENGTH: '500',
    HISTORY_LIMIT: '200',
    SESSIONS_PER_MINUTE: '5',
    MAX_SOCKETS_PER_USER: '3',
    MAX_SOCKETS_PER_IP: '7',
    MAX_ROOMS: '9',
  });
  assert.equal(config.port, 8080);
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.redisUrl, 'rediss://user:pw@redis.internal:6380/0');
  assert.equal(config.sessionTtlMs, 12 * 3_600_000);
  assert.deepEqual(config.allowedOrigins, ['https://a.example', 'http://localhost:5173']);
  assert.deepEqual(config.trustProxy, ['10.0.0.0/8', '::1', 'loopback']);
  assert.equal(config.logLevel, 'debug');
  assert.equal(config.maxMessageLength, 500);
  assert.equal(config.historyLimit, 200);
  assert.deepEqual(
    [config.sessionsPerMinute, config.maxSocketsPerUser, config.maxSocketsPerIp, config.maxRooms],
    [5, 3, 7, 9],
  );
});

test('durations take s, m, h and d', () => {
  assert.equal(loadConfig({ SESSION_TTL: '90s' }).sessionTtlMs, 90_000);
  assert.equal(loadConfig({ SESSION_TTL: '15m' }).sessionTtlMs, 900_000);
  assert.equal(loadConfig({ SESSION_TTL: '2d' }).sessionTtlMs, 172_800_000);
});

test('TRUST_PROXY=none trusts no proxy', () => {
  assert.deepEqual(loadConfig({ TRUST_PROXY: 'none' }).trustProxy, []);
});

test('bad values are refused with a message naming the variable', () => {
  const cases: Array<[Record<string, string>, string, RegExp]> = [
    [{ PORT: 'abc' }, 'PORT', /whole number from 1 to 65535/],
    [{ PORT: '0' }, 'PORT', /from 1/],
    [{ PORT: '70000' }, 'PORT', /65535/],
    [{ PORT: '80.5' }, 'PORT', /whole number/],
    [{ REDIS_URL: 'http://redis' }, 'REDIS_URL', /redis:\/\//],
    [{ REDIS_URL: 'redis://x' }, 'SESSION_SECRET', /required when REDIS_URL/],
    [{ SESSION_SECRET: 'short' }, 'SESSION_SECRET', /at least 32/],
    [{ SESSION_TTL: '10' }, 'SESSION_TTL', /duration/],
    [{ SESSION_TTL: '0s' }, 'SESSION_TTL', /positive/],
    [{ SESSION_TTL: '1w' }, 'SESSION_TTL', /duration/],
    [{ ALLOWED_ORIGINS: 'example.com' }, 'ALLOWED_ORIGINS', /origins/],
    [{ ALLOWED_ORIGINS: 'https://a.example/' }, 'ALLOWED_ORIGINS', /origins/],
    [{ ALLOWED_ORIGINS: 'ftp://a.example' }, 'ALLOWED_ORIGINS', /origins/],
    [{ TRUST_PROXY: 'everyone' }, 'TRUST_PROXY', /addresses/],
    [{ TRUST_PROXY: '10.0.0.0/33' }, 'TRUST_PROXY', /addresses/],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /one of/],
    [{ MAX_MESSAGE_LENGTH: '0' }, 'MAX_MESSAGE_LENGTH', /from 1 to 4000/],
    [{ MAX_MESSAGE_LENGTH: '5000' }, 'MAX_MESSAGE_LENGTH', /4000/],
    [{ HISTORY_LIMIT: '-1' }, 'HISTORY_LIMIT', /whole number/],
  ];
  for (const [env, variable, pattern] of cases) {
    const err = problem(env);
    assert.equal(err.variable, variable, JSON.stringify(env));
    assert.ok(err.message.startsWith(variable), err.message);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'one line');
  }
});

test('empty values count as unset', () => {
  assert.equal(loadConfig({ PORT: '', REDIS_URL: '  ' }).port, 3000);
});
