import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSessions, normaliseName } from '../../src/server/session';
import { TEST_SECRET, build } from '../helpers/app';

const alice = { id: 'u1', name: 'alice' };

test('a token issued is verified, and carries id, name and expiry', () => {
  const sessions = createSessions(TEST_SECRET, 60_000);
  const { token } = sessions.issue(alice, 1_000);
  assert.deepEqual(sessions.verify(token, 2_000), { user: alice, expiresAt: 61_000 });
});

test('tampered, foreign, expired and malformed tokens are refused', () => {
  const sessions = createSessions(TEST_SECRET, 60_000);
  const { token } = sessions.issue(alice, 1_000);
  const [version, payload, signature] = token.split('.') as [string, string, string];
  const forged = Buffer.from(JSON.stringify({ sub: 'u1', name: 'mallory', exp: 9e15 })).toString('base64url');
  const flipped = signature.slice(0, -2) + (signature.at(-2) === 'A' ? 'B' : 'A') + signature.at(-1);

  assert.equal(sessions.verify(`${version}.${forged}.${signature}`, 2_000), null, 'tampered payload');
  assert.equal(sessions.verify(`${version}.${payload}.${flipped}`, 2_000), null, 'tampered signature');
  assert.equal(createSessions('another-secret-of-at-least-32-characters', 60_000).verify(token, 2_000), null, 'other secret');
  assert.equal(sessions.verify(token, 61_000), null, 'expired');
  for (const garbage of ['', 'garbage', 'v1..', 'v1.a.b.c', `v2.${payload}.${signature}`, 'x'.repeat(100_000), '.'.repeat(50)]) {
    assert.equal(sessions.verify(garbage, 2_000), null, `garbage ${garbage.slice(0, 20)}`);
  }
  assert.equal(sessions.verify(undefined), null);
});

test('names are trimmed and NFC-normalised, 1-32 visible code points', () => {
  assert.equal(normaliseName('  alice  '), 'alice');
  assert.equal(normaliseName('Cafe\u0301'), 'Café');
  assert.equal(normaliseName('😀'.repeat(32)), '😀'.repeat(32), '32 emoji are 32 code points');
  assert.equal(normaliseName('👩‍💻 dev'), '👩‍💻 dev', 'emoji joined by ZWJ');
  assert.equal(normaliseName('a'.repeat(32)), 'a'.repeat(32));
  for (const bad of ['', '   ', 'a'.repeat(33), '😀'.repeat(33), 'bad\u0000name', 'tab\tname', 'evil\u202Eeman', '\u200B\u200B', '\u200D', 'line\u2028break', '\uD800x', 42, null, undefined, {}]) {
    assert.equal(normaliseName(bad), null, `refuses ${JSON.stringify(bad)}`);
  }
});

test('POST /api/session starts a session with the contract cookie', async (t) => {
  const { app } = await build(t);
  const response = await app.inject({ method: 'POST', url: '/api/session', payload: { name: ' alice ' } });
  assert.equal(response.statusCode, 200);
  const body = response.json();
  assert.equal(body.user.name, 'alice');
  assert.match(body.user.id, /^[\w-]{16}$/);
  assert.equal(typeof body.token, 'string');
  const cookie = String(response.headers['set-cookie']);
  assert.ok(cookie.startsWith(`chatter_session=${body.token}; `), cookie);
  assert.match(cookie, /; HttpOnly/);
  assert.match(cookie, /; SameSite=Lax/);
  assert.match(cookie, /; Path=\//);
  assert.doesNotMatch(cookie, /Secure/, 'plain HTTP from a client');

  const me = await app.inject({ method: 'GET', url: '/api/session', headers: { cookie: `chatter_session=${body.token}` } });
  assert.deepEqual(me.json(), { user: body.user });
  const bearer = await app.inject({ method: 'GET', url: '/api/session', headers: { authorization: `Bearer ${body.token}` } });
  assert.deepEqual(bearer.json(), { user: body.user });
});

test('the cookie is Secure behind a trusted proxy that saw HTTPS, and not behind an untrusted one', async (t) => {
  const { app } = await build(t);
  const proxied = await app.inject({
    method: 'POST',
    url: '/api/session',
    payload: { name: 'alice' },
    headers: { 'x-forwarded-proto': 'https' },
    remoteAddress: '127.0.0.1',
  });
  assert.match(String(proxied.headers['set-cookie']), /; Secure/);
  const spoofed = await app.inject({
    method: 'POST',
    url: '/api/session',
    payload: { name: 'alice' },
    headers: { 'x-forwarded-proto': 'https' },
    remoteAddress: '203.0.113.9',
  });
  assert.doesNotMatch(String(spoofed.headers['set-cookie']), /Secure/);
});

test('renaming keeps the user id', async (t) => {
  const { app } = await build(t);
  const first = await app.inject({ method: 'POST', url: '/api/session', payload: { name: 'alice' } });
  const second = await app.inject({
    method: 'POST',
    url: '/api/session',
    payload: { name: 'alice2' },
    headers: { cookie: `chatter_session=${first.json().token}` },
  });
  assert.equal(second.json().user.id, first.json().user.id);
  assert.equal(second.json().user.name, 'alice2');
});

test('bad names and bodies get clear errors', async (t) => {
  const { app } = await build(t);
  const badName = await app.inject({ method: 'POST', url: '/api/session', payload: { name: 'x'.repeat(40) } });
  assert.equal(badName.statusCode, 400);
  assert.equal(badName.json().error.code, 'invalid_name');
  const notObject = await app.inject({ method: 'POST', url: '/api/session', payload: '[1]', headers: { 'content-type': 'application/json' } });
  assert.equal(notObject.statusCode, 400);
  assert.equal(notObject.json().error.code, 'bad_request');
  const notJson = await app.inject({ method: 'POST', url: '/api/session', payload: '{nope', headers: { 'content-type': 'application/json' } });
  assert.equal(notJson.statusCode, 400);
  assert.equal(notJson.json().error.code, 'bad_request');
  const huge = await app.inject({ method: 'POST', url: '/api/session', payload: { name: 'x'.repeat(10_000) } });
  assert.equal(huge.statusCode, 413);
  assert.equal(huge.json().error.code, 'payload_too_large');
});

test('GET /api/session without a valid token is 401 unauthorized', async (t) => {
  const { app } = await build(t);
  for (const headers of [{}, { cookie: 'chatter_session=forged' }, { authorization: 'Bearer nope' }, { authorization: `Bearer ${'a'.repeat(100_000)}` }]) {
    const response = await app.inject({ method: 'GET', url: '/api/session', headers });
    assert.equal(response.statusCode, 401);
    assert.deepEqual(Object.keys(response.json().error).sort(), ['code', 'message']);
    assert.equal(response.json().error.code, 'unauthorized');
  }
});

test('an expired session is refused', async (t) => {
  const { app } = await build(t);
  const { token } = createSessions(TEST_SECRET, 1000).issue(alice, Date.now() - 5000);
  const response = await app.inject({ method: 'GET', url: '/api/session', headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.statusCode, 401);
});

test('DELETE /api/session clears the cookie', async (t) => {
  const { app } = await build(t);
  const response = await app.inject({ method: 'DELETE', url: '/api/session' });
  assert.equal(response.statusCode, 204);
  assert.match(String(response.headers['set-cookie']), /^chatter_session=; .*Max-Age=0/);
});
