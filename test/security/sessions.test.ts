// Forged, foreign, expired and oversized session tokens, and hostile display names, against the
// real HTTP and WebSocket endpoints: every one refused, and the server keeps serving.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { mock, test } from 'node:test';
import { createSessions } from '../../src/server/session';
import { TEST_SECRET, build } from '../helpers/app';
import { TestClient } from '../helpers/ws';

function forgeries(token: string): Record<string, string> {
  const [version, payload, signature] = token.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  const swapped = (claim: object) => Buffer.from(JSON.stringify({ ...claims, ...claim })).toString('base64url');
  const flip = (text: string, at: number) => text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1);
  const now = Date.now();
  return {
    'payload naming someone else': `${version}.${swapped({ sub: 'someone-else' })}.${signature}`,
    'payload with a later expiry': `${version}.${swapped({ exp: 9e15 })}.${signature}`,
    'signature changed at the start': `${version}.${payload}.${flip(signature, 0)}`,
    'signature changed at the end': `${version}.${payload}.${flip(signature, signature.length - 2)}`,
    'signature cut short': `${version}.${payload}.${signature.slice(0, 10)}`,
    'no signature': `${version}.${payload}.`,
    'alg-none style': `${version}.${payload}`,
    'signed with another secret': createSessions('another-secret-that-is-32-characters!', 60_000).issue(claims, now).token,
    expired: createSessions(TEST_SECRET, 1000).issue({ id: claims.sub, name: claims.name }, now - 60_000).token,
    garbage: 'not-a-token',
    'unicode garbage': '\u202e😀.😀.😀',
    'dots only': '...',
    'JSON instead of a token': '{"sub":"admin"}',
    'a 12 KB token': `v1.${'A'.repeat(12_000)}.${signature}`,
  };
}

test('forged, foreign, expired and malformed tokens get 401 on HTTP and WebSocket, and the server carries on', async (t) => {
  const server = await build(t);
  const { token } = await server.signIn('alice');
  for (const [what, forged] of Object.entries(forgeries(token))) {
    const encoded = encodeURIComponent(forged);
    const carriers: Array<Record<string, string>> = [{ authorization: `Bearer ${encoded}` }, { cookie: `chatter_session=${encoded}` }];
    for (const headers of carriers) {
      const response = await fetch(`${server.url}/api/session`, { headers });
      assert.equal(response.status, 401, `${what} via ${Object.keys(headers)[0]}`);
      assert.equal((await response.json()).error.code, 'unauthorized');
      assert.equal(await TestClient.upgradeStatus(server.wsUrl, { headers }), 401, `${what} on /ws`);
    }
    assert.equal(await TestClient.upgradeStatus(`${server.wsUrl}?token=${encoded}`), 401, `${what} as ?token=`);
  }
  const empties: Array<Record<string, string>> = [{ authorization: 'Bearer ' }, { cookie: 'chatter_session=' }, { authorization: 'Basic YTpi' }];
  for (const empty of empties) {
    assert.equal((await fetch(`${server.url}/api/session`, { headers: empty })).status, 401, JSON.stringify(empty));
  }
  assert.equal(await TestClient.upgradeStatus(`${server.wsUrl}?token=`), 401);
  assert.equal(server.app.chat.gateway.connections.size, 0, 'no socket opened');
  // The genuine token still works, so nothing above broke the server.
  assert.equal((await fetch(`${server.url}/api/session`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
});

test('a 100 KB token is stopped before it reaches the app (431), and the server carries on', async (t) => {
  // Node refuses request heads over 16 KiB, so a huge token never costs an HMAC; ours are < 300 bytes.
  const server = await build(t);
  const { token } = await server.signIn('alice');
  const huge = 'v1.' + 'A'.repeat(100_000) + '.x';
  const carriers: Array<Record<string, string>> = [{ authorization: `Bearer ${huge}` }, { cookie: `chatter_session=${huge}` }];
  for (const headers of carriers) {
    assert.equal((await fetch(`${server.url}/api/session`, { headers })).status, 431);
    assert.equal(await TestClient.upgradeStatus(server.wsUrl, { headers }), 431);
  }
  assert.equal(await TestClient.upgradeStatus(`${server.wsUrl}?token=${huge}`), 431);
  assert.equal((await fetch(`${server.url}/api/session`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
});

test('a wrong signature costs the same whether it differs early or late (constant-time compare)', () => {
  // Relative, not absolute: both kinds are checked in interleaved rounds on the same machine, and
  // their medians compared. A byte-by-byte early-exit compare of 32 bytes against a full HMAC shows
  // up as a steady gap; timingSafeEqual does not.
  const sessions = createSessions(TEST_SECRET, 60_000);
  const { token } = sessions.issue({ id: 'u1', name: 'alice' });
  const [version, payload, signature] = token.split('.') as [string, string, string];
  const raw = Buffer.from(signature, 'base64url');
  const wrongAt = (index: number) => {
    const copy = Buffer.from(raw);
    copy[index] = copy[index]! ^ 0xff;
    return `${version}.${payload}.${copy.toString('base64url')}`;
  };
  const early = wrongAt(0);
  const late = wrongAt(raw.length - 1);
  const round = (candidate: string) => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < 200; i++) assert.equal(sessions.verify(candidate), null);
    return Number(process.hrtime.bigint() - start);
  };
  const earlyTimes: number[] = [];
  const lateTimes: number[] = [];
  for (let i = 0; i < 60; i++) {
    earlyTimes.push(round(early));
    lateTimes.push(round(late));
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[values.length >> 1]!;
  const ratio = median(earlyTimes) / median(lateTimes);
  assert.ok(ratio > 0.8 && ratio < 1.25, `early/late median ratio ${ratio.toFixed(3)}`);

  // The HMAC dwarfs any compare, so timing alone would not notice an early-exit compare coming
  // back: check that the signature goes through crypto.timingSafeEqual, whole.
  const spy = mock.method(crypto, 'timingSafeEqual');
  syncBuiltinESMExports(); // so session.ts's named import sees the spy
  try {
    assert.equal(sessions.verify(early), null);
    assert.equal(spy.mock.callCount(), 1);
    assert.equal((spy.mock.calls[0]!.arguments[0] as Buffer).length, 32, 'all 32 bytes compared');
  } finally {
    spy.mock.restore();
    syncBuiltinESMExports();
  }
});

test('hostile names are refused with 400 invalid_name; 32 emoji are fine', async (t) => {
  const server = await build(t);
  const post = (name: unknown) => server.app.inject({ method: 'POST', url: '/api/session', payload: { name } });
  const hostile = {
    'a NUL byte': 'bad\u0000name',
    'an escape sequence': '\u001b[31mred',
    'a newline': 'two\nlines',
    'a right-to-left override': 'evil\u202Egnp.exe',
    'a left-to-right isolate': 'a\u2066b',
    'zero-width spaces only': '\u200B\u200B\u200B',
    'a zero-width joiner only': '\u200D',
    'a byte order mark inside': 'al\uFEFFice',
    'a lone surrogate': 'x\uD800',
    '33 letters': 'a'.repeat(33),
    '33 emoji': '😀'.repeat(33),
    'whitespace only': ' \t ',
    'a number': 42,
    'an object': { toString: 'alice' },
  };
  for (const [what, name] of Object.entries(hostile)) {
    const response = await post(name);
    assert.equal(response.statusCode, 400, what);
    assert.equal(response.json().error.code, 'invalid_name', what);
  }
  const emoji = await post('😀'.repeat(32));
  assert.equal(emoji.statusCode, 200, '32 code points, 64 UTF-16 units');
  assert.equal(emoji.json().user.name, '😀'.repeat(32));
});
