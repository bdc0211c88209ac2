// Everything a whole session writes to the log, at the most verbose level, searched for the
// secrets that must never be there: the token (in any of its three carriers) and message text.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { startServer } from '../helpers/process';
import { TestClient } from '../helpers/ws';

test('no token, cookie value or message text reaches the log, even at trace level', async (t) => {
  const server = await startServer({ env: { LOG_LEVEL: 'trace' } });
  t.after(() => server.stop('SIGKILL'));
  const secretText = `secret-text-${randomBytes(8).toString('hex')}`;

  const signIn = await fetch(`${server.url}/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'alice' }),
  });
  const { token } = (await signIn.json()) as { token: string };
  const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
  await fetch(`${server.url}/api/session`, { headers: { cookie } });
  await fetch(`${server.url}/api/session`, { headers: { authorization: `Bearer ${token}` } });
  await fetch(`${server.url}/api/session?token=${token}`);
  await fetch(`${server.url}/ws?token=${token}&other=1`); // 426, URL logged
  await fetch(`${server.url}/api/session`, { method: 'POST', headers: { 'content-type': 'application/json', cookie }, body: JSON.stringify({ name: secretText.slice(0, 32) }) });

  const viaQuery = await TestClient.connect(server.wsUrl, token);
  const viaCookie = await TestClient.connect(server.wsUrl, null, { headers: { cookie } });
  await viaQuery.join('general');
  await viaCookie.join('general');
  await viaQuery.say('general', secretText, 'c1');
  await viaCookie.seen((f) => f.type === 'message' && f.text === secretText);
  // Refused frames that carry the text: a bad room, too long, not joined, not JSON.
  viaQuery.sendRaw(JSON.stringify({ type: 'send', room: 'Not A Room', text: secretText, clientId: 'c2' }));
  viaQuery.sendRaw(JSON.stringify({ type: 'send', room: 'general', text: secretText.repeat(200), clientId: 'c3' }));
  viaQuery.sendRaw(JSON.stringify({ type: 'send', room: 'elsewhere', text: secretText, clientId: 'c4' }));
  viaQuery.sendRaw(`{"type":"send","text":"${secretText}"`);
  viaQuery.send({ type: 'history', room: 'general', limit: 10 });
  await viaQuery.next((f) => f.type === 'history');
  await viaQuery.settle();
  viaQuery.sendRaw(Buffer.from(secretText), { binary: true }); // closes with 1003
  await viaQuery.closed;
  await fetch(`${server.url}/api/session`, { method: 'DELETE', headers: { cookie } });

  await server.stop('SIGTERM');
  const everything = JSON.stringify(server.logs) + server.stderr;
  assert.ok(server.logs.length > 10, 'the session was logged');
  assert.ok(everything.includes('"/ws'), 'requests are logged, with their paths');
  const [, payload, signature] = token.split('.') as [string, string, string];
  for (const [what, secret] of Object.entries({ token, 'token payload': payload, 'token signature': signature, 'message text': secretText })) {
    assert.ok(!everything.includes(secret), `${what} appears in the log`);
  }
});
