// The built dist/server.js as users run it: refusing bad config, and draining on SIGTERM.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runToExit, signIn, startServer } from '../helpers/process';
import { TestClient } from '../helpers/ws';

test('bad configuration exits 1 with one line naming the variable', async () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'abc' }, /PORT must be a whole number/],
    [{ REDIS_URL: 'redis://127.0.0.1:1' }, /SESSION_SECRET is required when REDIS_URL is set/],
    [{ SESSION_TTL: 'forever' }, /SESSION_TTL must be a positive duration/],
  ];
  for (const [env, message] of cases) {
    const { code, stderr } = await runToExit(env);
    assert.equal(code, 1, JSON.stringify(env));
    assert.match(stderr, message);
    assert.equal(stderr.trim().split('\n').length, 1, `one line: ${stderr}`);
  }
});

test('embedded mode says so at start, and warns about a random session secret', async (t) => {
  const server = await startServer({ env: { SESSION_SECRET: '' } });
  t.after(() => server.stop('SIGKILL'));
  const messages = server.logs.map((line) => String(line.msg));
  assert.ok(messages.some((m) => /embedded mode: history is kept in memory and lost/.test(m)));
  assert.ok(server.logs.some((line) => line.level === 40 && /SESSION_SECRET is not set/.test(String(line.msg))));
  const page = await fetch(server.url);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<div id="app">/);
});

test('SIGTERM drains: readyz 503, sockets closed with 1012, no new sockets, exit 0 within 10 s', async (t) => {
  const server = await startServer();
  t.after(() => server.stop('SIGKILL'));
  const { token } = await signIn(server.url, 'alice');
  const polite = await TestClient.connect(server.wsUrl, token);
  await polite.join('general');
  // A peer that stops reading holds the drain open for its grace period, long enough to look inside.
  const stuck = await TestClient.connect(server.wsUrl, token);
  await stuck.join('general');
  (stuck.socket as unknown as { _socket: { pause(): void } })._socket.pause();
  assert.equal((await fetch(`${server.url}/readyz`)).status, 200);

  server.child.kill('SIGTERM');
  assert.equal((await polite.closed).code, 1012);
  const ready = await fetch(`${server.url}/readyz`);
  assert.equal(ready.status, 503);
  assert.deepEqual(await ready.json(), { status: 'not_ready', reason: 'draining' });
  assert.equal(await TestClient.upgradeStatus(`${server.wsUrl}?token=${token}`), 503);

  const exit = await Promise.race([server.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 10_000))]);
  assert.equal(exit, 0);
  assert.ok(server.logs.some((line) => line.msg === 'stopped'));
});
