// Abuse of a public server: sign-up floods, socket hoarding, message floods and room sprawl.
// Each limit is shown holding under attack while everyone else carries on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { build, type TestApp } from '../helpers/app';
import { TestClient } from '../helpers/ws';

const DEFAULTS = { SESSIONS_PER_MINUTE: '30' }; // the helper raises it for other suites

async function connect(server: TestApp, name: string) {
  const { token, user } = await server.signIn(name);
  return Object.assign(await TestClient.connect(server.wsUrl, token), { user, token });
}

test('POST /api/session is rate-limited per client IP, by the forwarded address behind a trusted proxy', async (t) => {
  const server = await build(t, DEFAULTS);
  const post = (remoteAddress: string, forwardedFor?: string) =>
    server.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { name: 'someone' },
      remoteAddress,
      headers: forwardedFor ? { 'x-forwarded-for': forwardedFor } : {},
    });

  // A client on the internet: 30 at once, then refused, however it dresses up X-Forwarded-For.
  for (let i = 0; i < 30; i++) assert.equal((await post('203.0.113.9')).statusCode, 200, `session ${i + 1}`);
  const refused = await post('203.0.113.9');
  assert.equal(refused.statusCode, 429);
  assert.equal(refused.json().error.code, 'rate_limited');
  assert.ok(refused.json().error.retryAfterMs > 0);
  assert.ok(Number(refused.headers['retry-after']) >= 1);
  assert.equal((await post('203.0.113.9', '198.51.100.1')).statusCode, 429, 'an untrusted peer cannot pick its own address');
  assert.equal((await post('203.0.113.10')).statusCode, 200, 'other addresses are not affected');

  // Behind a proxy on a private address (trusted by default): each forwarded client has its own limit.
  for (let i = 0; i < 30; i++) assert.equal((await post('10.0.0.2', '198.51.100.7')).statusCode, 200);
  assert.equal((await post('10.0.0.2', '198.51.100.7')).statusCode, 429);
  assert.equal((await post('10.0.0.2', '198.51.100.8')).statusCode, 200, 'a different client behind the same proxy');

  // Existing sessions are untouched by the limit.
  const { token } = await server.signIn('alice');
  assert.equal((await fetch(`${server.url}/api/session`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
});

test('sockets per user and per IP are capped with a clear 429, and a closed socket frees its place', async (t) => {
  const server = await build(t, { MAX_SOCKETS_PER_USER: '3', MAX_SOCKETS_PER_IP: '5' });
  const { token, user } = await server.signIn('hoarder');
  const own = await Promise.all([1, 2, 3].map(() => TestClient.connect(server.wsUrl, token)));
  assert.equal(await TestClient.upgradeStatus(`${server.wsUrl}?token=${token}`), 429, 'a fourth socket for one user');
  const refusal = await TestClient.upgradeAnswer(`${server.wsUrl}?token=${token}`);
  assert.equal(refusal.status, 429);
  assert.equal(JSON.parse(refusal.body).error.code, 'too_many_sockets');

  own[0]!.close();
  await own[0]!.closed;
  await waitFor(() => server.app.chat.gateway.socketsPerUser.get(user.id) === 2);
  own[0] = await TestClient.connect(server.wsUrl, token);

  // Other users from the same address: two more fit under the per-IP cap of 5, the next does not.
  const others = [await connect(server, 'b'), await connect(server, 'c')];
  const { token: extra } = await server.signIn('d');
  assert.equal(await TestClient.upgradeStatus(`${server.wsUrl}?token=${extra}`), 429, 'a sixth socket from one IP');

  // Failed and refused handshakes hold nothing.
  for (const socket of [...own, ...others]) socket.close();
  await waitFor(() => server.app.chat.gateway.socketsPerIp.size === 0 && server.app.chat.gateway.socketsPerUser.size === 0);
});

test('one socket flooding is refused, then closed with 1008, while the room keeps chatting', async (t) => {
  const server = await build(t);
  const flooder = await connect(server, 'flooder');
  const alice = await connect(server, 'alice');
  const bob = await connect(server, 'bob');
  for (const client of [flooder, alice, bob]) await client.join('general');

  // As fast as the socket takes them: sends, then any frame at all.
  let flooded = 0;
  const flood = (async () => {
    for (let i = 0; i < 5000 && flooder.socket.readyState === flooder.socket.OPEN; i++) {
      flooder.send({ type: 'send', room: 'general', text: `spam ${i}`, clientId: `spam-${i}` });
      flooded++;
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  })();

  // Meanwhile alice and bob talk; every message is acked and reaches the other.
  const latencies: number[] = [];
  for (let i = 0; i < 10; i++) {
    const [speaker, listener] = i % 2 === 0 ? [alice, bob] : [bob, alice];
    const start = performance.now();
    const ack = await speaker.say('general', `normal ${i}`, `n${i}`);
    assert.equal(ack.type, 'ack');
    await listener.seen((f) => f.type === 'message' && f.id === ack.id);
    latencies.push(performance.now() - start);
  }
  await flood;
  assert.equal((await flooder.closed).code, 1008);
  const refusals = flooder.frames.filter((f) => f.type === 'error' && f.code === 'rate_limited');
  assert.ok(refusals.length > 0, 'refused with rate_limited before being closed');
  const stored = alice.messages('general').filter((m) => String(m.text).startsWith('spam')).length;
  assert.ok(stored <= 10 + 5 * 10, `the flood stored only its burst plus the refill (${stored} of ${flooded})`);
  t.diagnostic(`flooder sent ${flooded}, stored ${stored}; others' round trips ${latencies.map((l) => l.toFixed(1)).join(' ')} ms`);
  alice.close();
  bob.close();
});

test('embedded mode keeps at most MAX_ROOMS rooms with history; the rest get limit_exceeded', async (t) => {
  const server = await build(t, { MAX_ROOMS: '3' });
  const alice = await connect(server, 'alice');
  for (const room of ['r1', 'r2', 'r3', 'r4']) await alice.join(room);
  for (const room of ['r1', 'r2', 'r3']) assert.equal((await alice.say(room, 'hi', `c-${room}`)).type, 'ack');
  const refused = await alice.say('r4', 'one room too many', 'c-r4');
  assert.equal(refused.type, 'error');
  assert.equal(refused.code, 'limit_exceeded');
  assert.equal((await alice.say('r1', 'existing rooms still work', 'c-r1b')).type, 'ack');
  const { rooms } = await (await fetch(`${server.url}/api/rooms`)).json();
  assert.deepEqual(rooms.filter((r: { lastMessageAt: number | null }) => r.lastMessageAt !== null).length, 3);
  alice.close();
});

async function waitFor(condition: () => boolean, waitMs = 5000): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
