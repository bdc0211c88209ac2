// Cross-site WebSocket hijacking, in real Chromium: a page from another origin (another port on
// loopback, so the same site, and the victim's SameSite=Lax cookie does go along) tries to open
// the victim's chat socket and read their session. Only the Origin check stands in the way, so
// the test also shows that ALLOWED_ORIGINS lowering it is what lets the socket through.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test, type TestContext } from 'node:test';
import { launchChromium } from '../helpers/browser';
import { freePort, startServer } from '../helpers/process';

interface Attempt {
  socket: { opened: boolean; welcome?: { type: string; user: { name: string } }; code?: number };
  session: { read: boolean; body?: string };
}

/** The attacker's page: opens the chat socket and reads /api/session with the victim's cookies. */
function attackerPage(chat: string): string {
  return `<!doctype html><title>free prizes</title><script>
    window.attempt = (async () => {
      const socket = await new Promise((resolve) => {
        const ws = new WebSocket(${JSON.stringify(chat.replace('http', 'ws') + '/ws')});
        ws.onmessage = (event) => { resolve({ opened: true, welcome: JSON.parse(event.data) }); ws.close(); };
        ws.onclose = (event) => resolve({ opened: false, code: event.code });
      });
      let session;
      try {
        const response = await fetch(${JSON.stringify(chat + '/api/session')}, { credentials: 'include' });
        session = { read: true, body: await response.text() };
      } catch {
        session = { read: false };
      }
      return { socket, session };
    })();
  </script>`;
}

async function attack(t: TestContext, env: Record<string, string>, attackerPort: number): Promise<{ attempt: Attempt; logs: Array<Record<string, unknown>> }> {
  const chat = await startServer({ env });
  t.after(() => chat.stop('SIGKILL'));
  const attacker = createServer((_req, res) => res.setHeader('content-type', 'text/html').end(attackerPage(chat.url)));
  await new Promise<void>((resolve) => attacker.listen(attackerPort, '127.0.0.1', resolve));
  t.after(() => attacker.close());

  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await (await browser.newContext()).newPage();
  // The victim signs in on the real chat page: the session cookie is now in the browser.
  await page.goto(chat.url);
  const signedIn = await page.evaluate(async () => {
    const response = await fetch('/api/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"victim"}' });
    return response.status;
  });
  assert.equal(signedIn, 200);
  // Then visits the attacker's page.
  await page.goto(`http://127.0.0.1:${attackerPort}/`);
  const attempt = (await page.evaluate('window.attempt')) as Attempt;
  await chat.stop('SIGTERM');
  return { attempt, logs: chat.logs };
}

test('a page from another origin cannot open /ws (403) or read /api/session with the victim\'s cookie', async (t) => {
  const attackerPort = await freePort();
  const { attempt, logs } = await attack(t, {}, attackerPort);
  assert.equal(attempt.socket.opened, false, 'the socket did not open');
  assert.equal(attempt.session.read, false, 'CORS kept the session unreadable');
  // fastify logs the request (with its URL) and its answer (with the status) under one reqId.
  const upgrades = new Set(logs.filter((line) => (line.req as { url?: string } | undefined)?.url === '/ws').map((line) => line.reqId));
  const answers = logs.filter((line) => upgrades.has(line.reqId)).map((line) => (line.res as { statusCode?: number } | undefined)?.statusCode);
  assert.ok(answers.includes(403), `the upgrade was answered 403 (${JSON.stringify(answers)})`);
});

test('ALLOWED_ORIGINS lets that origin open the socket (so the cookie did go along), and still not read the API', async (t) => {
  const attackerPort = await freePort();
  const { attempt } = await attack(t, { ALLOWED_ORIGINS: `http://127.0.0.1:${attackerPort}` }, attackerPort);
  assert.equal(attempt.socket.opened, true);
  assert.equal(attempt.socket.welcome?.type, 'welcome');
  assert.equal(attempt.socket.welcome?.user.name, 'victim', 'the victim\'s cookie authenticated it');
  assert.equal(attempt.session.read, false, 'ALLOWED_ORIGINS widens the socket only, not the HTTP API');
});
