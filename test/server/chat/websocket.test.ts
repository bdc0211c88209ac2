// The WebSocket contract over real sockets: a listening app and real `ws` clients.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { createSessions } from '../../../src/server/session';
import { PRESENCE_BATCH_MS } from '../../../src/server/chat/rooms';
import { createLogger } from '../../../src/server/logger';
import { MemoryStore } from '../../../src/server/store/memory';
import { RedisStore } from '../../../src/server/store/redis';
import { RedisServer } from '../../helpers/redis';
import { TEST_SECRET, build, type TestApp } from '../../helpers/app';
import { TestClient } from '../../helpers/ws';
import { heapAfterGc } from '../../helpers/heap';

async function connect(server: TestApp, name: string, options = {}) {
  const { token, user } = await server.signIn(name);
  const client = await TestClient.connect(server.wsUrl, token, options);
  return Object.assign(client, { user, token });
}

function paused(client: TestClient): { pause(): void; resume(): void } {
  // Stops reading from the TCP socket: the peer that never answers, or reads too slowly.
  return (client.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket;
}

test('welcome names the user and the replica', async (t) => {
  const server = await build(t);
  const alice = await connect(server, 'alice');
  assert.deepEqual(alice.frames[0], { type: 'welcome', user: alice.user, replica: 'test-replica' });
  alice.close();
});

test('the upgrade needs a valid session: 401 otherwise, and no socket opens', async (t) => {
  const server = await build(t);
  const { token } = await server.signIn('alice');
  const expired = createSessions(TEST_SECRET, 1000).issue({ id: 'x', name: 'x' }, Date.now() - 5000).token;
  assert.equal(await TestClient.upgradeStatus(server.wsUrl), 401);
  assert.equal(await TestClient.upgradeStatus(`${server.wsUrl}?token=forged`), 401);
  assert.equal(await TestClient.upgradeStatus(`${server.wsUrl}?token=${expired}`), 401);
  assert.equal(server.app.chat.gateway.connections.size, 0);
  assert.equal(await TestClient.upgradeStatus(server.wsUrl, { headers: { cookie: `chatter_session=${token}` } }), 101);
  assert.equal(await TestClient.upgradeStatus(server.wsUrl, { headers: { authorization: `Bearer ${token}` } }), 101);
  assert.equal(await TestClient.upgradeStatus(`${server.wsUrl}?token=${token}`), 101);
  const plain = await fetch(server.wsUrl.replace('ws:', 'http:'), { headers: { cookie: `chatter_session=${token}` } });
  assert.equal(plain.status, 426);
});

test('a foreign Origin is refused with 403; the own origin, listed ones and none are allowed', async (t) => {
  const server = await build(t, { ALLOWED_ORIGINS: 'https://app.example' });
  const { token } = await server.signIn('alice');
  const url = `${server.wsUrl}?token=${token}`;
  const own = new URL(server.url).origin;
  assert.equal(await TestClient.upgradeStatus(url, { origin: 'http://evil.example' }), 403);
  assert.equal(await TestClient.upgradeStatus(url, { origin: 'http://127.0.0.1:1' }), 403, 'another port is another origin');
  assert.equal(await TestClient.upgradeStatus(url, { origin: 'null' }), 403);
  assert.equal(await TestClient.upgradeStatus(url, { origin: own }), 101);
  assert.equal(await TestClient.upgradeStatus(url, { origin: 'https://app.example' }), 101);
  assert.equal(await TestClient.upgradeStatus(url), 101);
});

test('join, send, ack and message: everyone in the room gets it once, the sender too', async (t) => {
  const server = await build(t);
  const alice = await connect(server, 'alice');
  const bob = await connect(server, 'bob');
  const joined = await alice.join('general');
  assert.deepEqual(joined, { type: 'joined', room: 'general', messages: [], users: [alice.user], resumed: false });
  await bob.join('general');

  const ack = await alice.say('general', 'hello <b>bob</b>', 'c1');
  assert.equal(ack.type, 'ack');
  assert.equal(ack.room, 'general');
  assert.match(String(ack.id), /^\d+-\d+$/);
  for (const client of [alice, bob]) {
    const message = await client.seen((f) => f.type === 'message');
    assert.deepEqual(Object.keys(message).sort(), ['clientId', 'id', 'room', 'text', 'ts', 'type', 'user']);
    assert.equal(message.id, ack.id);
    assert.equal(message.text, 'hello <b>bob</b>');
    assert.deepEqual(message.user, alice.user, 'the author comes from the session');
    assert.equal(message.clientId, 'c1');
    assert.equal(typeof message.ts, 'number');
  }
  await bob.settle();
  assert.equal(bob.messages('general').length, 1);
  alice.close();
  bob.close();
});

test('a repeated clientId is acked with the first id and not delivered again', async (t) => {
  const server = await build(t);
  const alice = await connect(server, 'alice');
  await alice.join('general');
  const first = await alice.say('general', 'once', 'same-id');
  const second = await alice.say('general', 'twice?', 'same-id');
  assert.equal(second.type, 'ack');
  assert.equal(second.id, first.id);
  // Another socket of the same user is the same sender.
  const again = await TestClient.connect(server.wsUrl, alice.token);
  await again.join('general');
  assert.equal((await again.say('general', 'thrice?', 'same-id')).id, first.id);
  await alice.settle();
  assert.deepEqual(alice.messages('general').map((m) => m.text), ['once']);
  alice.close();
  again.close();
});

test('history pages back through older messages', async (t) => {
  const server = await build(t);
  const alice = await connect(server, 'alice');
  await alice.join('general');
  for (let i = 0; i < 8; i++) await alice.say('general', `m${i}`, `c${i}`);
  const ids = alice.messages('general').map((m) => String(m.id));

  alice.send({ type: 'history', room: 'general', before: ids[5], limit: 3 });
  const page = await alice.next((f) => f.type === 'history');
  assert.deepEqual((page.messages as Array<{ text: string }>).map((m) => m.text), ['m2', 'm3', 'm4']);
  assert.equal(page.hasMore, true);
  alice.send({ type: 'history', room: 'general', before: ids[2] });
  const last = await alice.next((f) => f.type === 'history');
  assert.deepEqual((last.messages as Array<{ text: string }>).map((m) => m.text), ['m0', 'm1']);
  assert.equal(last.hasMore, false);
  alice.close();
});

test('joined carries the latest 50 messages, oldest first', async (t) => {
  const server = await build(t);
  // Six sockets of one user, each within its burst of 10.
  const { token } = await server.signIn('alice');
  for (let s = 0; s < 6; s++) {
    const writer = await TestClient.connect(server.wsUrl, token);
    await writer.join('busy');
    for (let i = s * 10; i < s * 10 + 10; i++) await writer.say('busy', `m${i}`, `c${i}`);
    writer.close();
  }
  const bob = await connect(server, 'bob');
  const joined = await bob.join('busy');
  const texts = (joined.messages as Array<{ text: string }>).map((m) => m.text);
  assert.equal(texts.length, 50);
  assert.equal(texts[0], 'm10');
  assert.equal(texts[49], 'm59');
  bob.close();
});

test('a resume inside the recent messages of a room is answered without the store, as the store would answer it', async (t) => {
  // A memory store that counts the reads a resume makes of it.
  const store = new MemoryStore({ historyLimit: 1000 });
  let storeReads = 0;
  const after = store.after.bind(store);
  store.after = (...args) => {
    storeReads++;
    return after(...args);
  };
  const server = await build(t, {}, { store });
  const alice = await connect(server, 'alice');
  const bob = await connect(server, 'bob');
  await alice.join('general');
  await bob.join('general');
  await alice.say('general', 'before', 'c0');
  const seen = await bob.next((f) => f.type === 'message' && f.text === 'before');
  bob.close();
  await bob.closed;
  for (let i = 1; i <= 3; i++) await alice.say('general', `missed "${i}" ✓`, `c${i}`);

  const back = await TestClient.connect(server.wsUrl, bob.token);
  const joined = await back.join('general', String(seen.id));
  assert.equal(storeReads, 0, 'answered from the recent messages');
  assert.equal(joined.resumed, true);
  const fromStore = await store.after('general', String(seen.id), 500);
  assert.deepEqual(joined.messages, fromStore, 'the same messages, byte for byte as JSON');

  // Nothing missed: an empty resume, still without the store.
  const last = (joined.messages as Array<{ id: string }>).at(-1)!.id;
  const again = await TestClient.connect(server.wsUrl, bob.token);
  assert.deepEqual(((await again.join('general', last)).messages as unknown[]), []);
  assert.equal(storeReads, 1, 'only the comparison above read the store');

  // Once everyone here has left, the room's recent messages go with it: the store answers.
  for (const client of [alice, back, again]) client.close();
  await Promise.all([alice.closed, back.closed, again.closed]);
  await until(() => server.app.chat.hub.size === 0);
  const later = await TestClient.connect(server.wsUrl, bob.token);
  const resumed = await later.join('general', String(seen.id));
  assert.equal(storeReads, 2);
  assert.equal(resumed.resumed, true);
  assert.deepEqual(resumed.messages, fromStore);
  later.close();
});

test('resume: join with since returns exactly the missed messages', async (t) => {
  const server = await build(t);
  const alice = await connect(server, 'alice');
  const bob = await connect(server, 'bob');
  await alice.join('general');
  await bob.join('general');
  await alice.say('general', 'before', 'c0');
  const seen = await bob.next((f) => f.type === 'message');
  bob.close();
  await bob.closed;
  for (let i = 1; i <= 3; i++) await alice.say('general', `missed ${i}`, `c${i}`);

  const back = await TestClient.connect(server.wsUrl, bob.token);
  const joined = await back.join('general', String(seen.id));
  assert.equal(joined.resumed, true);
  assert.deepEqual((joined.messages as Array<{ text: string }>).map((m) => m.text), ['missed 1', 'missed 2', 'missed 3']);

  // Live traffic continues right after, without a gap or a repeat.
  await alice.say('general', 'live', 'c4');
  await back.next((f) => f.type === 'message' && f.text === 'live');
  await back.settle();
  assert.deepEqual(back.messages('general').map((m) => m.text), ['live']);

  // An id the server cannot vouch for: the latest messages instead, resumed false.
  const stranger = await TestClient.connect(server.wsUrl, bob.token);
  const fresh = await stranger.join('general', '1-0');
  assert.equal(fresh.resumed, false);
  assert.equal((fresh.messages as unknown[]).length, 5);
  alice.close();
  back.close();
  stranger.close();
});

test('messages sent while a socket joins are neither lost nor repeated', async (t) => {
  const server = await build(t);
  const writers = await Promise.all([connect(server, 'w1'), connect(server, 'w2'), connect(server, 'w3')]);
  for (const writer of writers) await writer.join('race');
  const reader = await connect(server, 'reader');
  // Joins land in the middle of a burst from three senders.
  const sending = writers.flatMap((writer, w) =>
    Array.from({ length: 10 }, (_, i) => writer.say('race', `w${w}-${i}`, `w${w}-${i}`)),
  );
  reader.send({ type: 'join', room: 'race' });
  const acks = await Promise.all(sending);
  await reader.next((f) => f.type === 'joined');
  await reader.settle();
  const joined = reader.frames.find((f) => f.type === 'joined')!;
  const received = [...(joined.messages as Array<{ id: string }>), ...reader.messages('race')].map((m) => String(m.id));
  const expected = acks.map((a) => String(a.id)).sort((a, b) => (a < b ? -1 : 1));
  assert.deepEqual(new Set(received).size, received.length, 'no duplicates');
  assert.deepEqual([...received].sort(), [...expected].sort(), 'every message exactly once');
  for (const writer of writers) writer.close();
  reader.close();
});

test('every socket sees a room in the same id order under concurrent senders', async (t) => {
  const server = await build(t);
  const clients = await Promise.all(['a', 'b', 'c', 'd'].map((name) => connect(server, name)));
  for (const client of clients) await client.join('order');
  await Promise.all(clients.map((client, c) => Promise.all(Array.from({ length: 10 }, (_, i) => client.say('order', `${c}:${i}`, `k${i}`)))));
  for (const client of clients) await client.settle();
  const orders = clients.map((client) => client.messages('order').map((m) => String(m.id)));
  assert.equal(orders[0]!.length, 40);
  for (const order of orders) assert.deepEqual(order, orders[0]);
  const numeric = orders[0]!.map((id) => id.split('-').map(Number) as [number, number]);
  for (let i = 1; i < numeric.length; i++) {
    const [ms, seq] = numeric[i]!;
    const [prevMs, prevSeq] = numeric[i - 1]!;
    assert.ok(ms > prevMs || (ms === prevMs && seq > prevSeq), 'ids grow strictly');
  }
  for (const client of clients) client.close();
});

test('presence counts users, not sockets', async (t) => {
  const server = await build(t);
  const bob = await connect(server, 'bob');
  await bob.join('general');
  const alice = await connect(server, 'alice');
  const joined = await alice.join('general');
  assert.deepEqual(new Set((joined.users as unknown[]).map((u) => JSON.stringify(u))), new Set([JSON.stringify(alice.user), JSON.stringify(bob.user)]));
  const arrived = await bob.next((f) => f.type === 'presence');
  assert.deepEqual(arrived, { type: 'presence', room: 'general', joined: [alice.user], left: [] });

  // A second tab of alice: no presence change for anyone.
  const aliceTab2 = await TestClient.connect(server.wsUrl, alice.token);
  const tab2Joined = await aliceTab2.join('general');
  assert.equal((tab2Joined.users as unknown[]).length, 2);
  aliceTab2.close();
  await aliceTab2.closed;
  await bob.settle();
  assert.equal(bob.frames.filter((f) => f.type === 'presence').length, 1, 'closing one of two tabs is not leaving');

  // Her last socket leaving is.
  alice.send({ type: 'leave', room: 'general' });
  assert.deepEqual(await alice.next((f) => f.type === 'left'), { type: 'left', room: 'general' });
  assert.deepEqual(await bob.next((f) => f.type === 'presence'), { type: 'presence', room: 'general', joined: [], left: [alice.user] });

  const rooms = await (await fetch(`${server.url}/api/rooms`)).json();
  assert.deepEqual(rooms, { rooms: [{ name: 'general', online: 1, lastMessageAt: null }] });
  alice.close();
  bob.close();
});

test('presence changes close together arrive as one frame, and a quick leave and return cancels out', async (t) => {
  const server = await build(t);
  const bob = await connect(server, 'bob');
  await bob.join('general');
  const alice = await connect(server, 'alice');
  const carol = await connect(server, 'carol');
  alice.send({ type: 'join', room: 'general' });
  carol.send({ type: 'join', room: 'general' });
  const arrived = await bob.next((f) => f.type === 'presence');
  assert.deepEqual(new Set((arrived.joined as Array<{ name: string }>).map((u) => u.name)), new Set(['alice', 'carol']));
  assert.deepEqual(arrived.left, []);

  // Alice leaves and comes straight back (a page reload): nobody is told anything.
  await alice.next((f) => f.type === 'joined');
  alice.send({ type: 'leave', room: 'general' });
  alice.send({ type: 'join', room: 'general' });
  await alice.next((f) => f.type === 'joined');
  await new Promise((resolve) => setTimeout(resolve, PRESENCE_BATCH_MS * 3));
  await bob.settle();
  assert.equal(bob.frames.filter((f) => f.type === 'presence').length, 1, 'no presence change for a quick return');
  for (const client of [alice, bob, carol]) client.close();
});

test('a crowd joining at once: each joined lists everyone, itself included, from a few shared reads', async (t) => {
  // Redis, where reading who is present takes a round trip, so joins overlap as in a reconnect
  // storm. Each read answers 20 ms after it was taken, and joins come 2 ms apart: a join that
  // reused a read already under way would get a list from before it arrived.
  const redis = await RedisServer.start(t, { persistent: false });
  const store = new RedisStore({ url: redis.url, historyLimit: 100, replicaId: 'test-replica', log: createLogger('silent') });
  const present = store.present.bind(store);
  let reads = 0;
  store.present = async (room) => {
    reads++;
    const users = await present(room);
    await new Promise((resolve) => setTimeout(resolve, 20));
    return users;
  };
  store.start();
  const server = await build(t, {}, { store });
  for (let waited = 0; !store.readiness().ready; waited += 10) {
    assert.ok(waited < 10_000, 'the store connects to Redis');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const crowd = await Promise.all(Array.from({ length: 60 }, (_, i) => connect(server, `crowd${i}`)));
  const frames: Array<Promise<Record<string, unknown>>> = [];
  for (const client of crowd) {
    frames.push(client.join('hall'));
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  for (const [i, joined] of (await Promise.all(frames)).entries()) {
    const names = new Set((joined.users as Array<{ name: string }>).map((user) => user.name));
    assert.ok(names.has(`crowd${i}`), `crowd${i} is in its own list`);
  }
  assert.ok(reads < crowd.length / 2, `${reads} reads for ${crowd.length} joins`);
  const late = await connect(server, 'late');
  assert.equal(((await late.join('hall')).users as unknown[]).length, crowd.length + 1, 'a later join sees everyone');
  for (const client of [...crowd, late]) client.close();
});

test('a dropped socket leaves its rooms once its grace ends; back within the grace, nobody sees a change', async (t) => {
  const server = await build(t, {}, { presenceGraceMs: 1000 });
  const { gateway, hub, store } = server.app.chat;
  const alice = await connect(server, 'alice');
  const bob = await connect(server, 'bob');
  await bob.join('general');
  await alice.join('general');
  await bob.next((f) => f.type === 'presence');

  // Dropped and back (a reload): still present meanwhile, and no presence frame for anyone.
  alice.socket.terminate();
  await until(() => gateway.connections.size === 1);
  assert.equal(hub.graceCount, 1);
  assert.deepEqual(await store.present('general'), [bob.user, alice.user], 'alice is still present during her grace');
  const again = await TestClient.connect(server.wsUrl, alice.token);
  assert.equal(((await again.join('general')).users as unknown[]).length, 2);
  assert.equal(hub.graceCount, 0, 'coming back ends the grace');
  await bob.settle();
  assert.equal(bob.frames.filter((f) => f.type === 'presence').length, 1, 'bob saw alice arrive once, and nothing since');

  // Dropped for good: she leaves when the grace ends.
  again.socket.terminate();
  assert.deepEqual(await bob.next((f) => f.type === 'presence'), { type: 'presence', room: 'general', joined: [], left: [alice.user] });
  assert.equal(hub.graceCount, 0);
  bob.close();
});

test('closing the server ends every grace: the store says goodbye for everyone at once', async (t) => {
  const server = await build(t, {}, { presenceGraceMs: 60_000 });
  const alice = await connect(server, 'alice');
  await alice.join('general');
  alice.socket.terminate();
  await until(() => server.app.chat.hub.graceCount === 1);
  await server.app.close();
  assert.equal(server.app.chat.hub.graceCount, 0, 'no timer left running');
});

test('typing reaches the others in the room, not the typist', async (t) => {
  const server = await build(t);
  const alice = await connect(server, 'alice');
  const bob = await connect(server, 'bob');
  await alice.join('general');
  await bob.join('general');
  alice.send({ type: 'typing', room: 'general' });
  assert.deepEqual(await bob.next((f) => f.type === 'typing'), { type: 'typing', room: 'general', user: alice.user });
  alice.send({ type: 'typing', room: 'general' }); // too soon after the first: dropped quietly
  await alice.settle();
  await bob.settle();
  assert.equal(alice.frames.filter((f) => f.type === 'typing' || f.type === 'error').length, 0);
  assert.equal(bob.frames.filter((f) => f.type === 'typing').length, 1);
  alice.close();
  bob.close();
});

test('send, history and typing need the room joined', async (t) => {
  const server = await build(t);
  const alice = await connect(server, 'alice');
  for (const frame of [
    { type: 'send', room: 'general', text: 'hi', clientId: 'c1' },
    { type: 'history', room: 'general' },
    { type: 'typing', room: 'general' },
  ]) {
    alice.send(frame);
    const error = await alice.next((f) => f.type === 'error');
    assert.equal(error.code, 'not_joined');
    assert.equal((error.ref as { type: string }).type, frame.type);
    assert.equal((error.ref as { room: string }).room, 'general');
  }
  alice.close();
});

test('malformed frames get named errors and the socket stays open', async (t) => {
  const server = await build(t, { MAX_MESSAGE_LENGTH: '10' });
  const alice = await connect(server, 'alice');
  await alice.join('general');
  const cases: Array<[string, string]> = [
    ['{nope', 'bad_request'],
    ['[]', 'bad_request'],
    [JSON.stringify({ type: 'dance' }), 'bad_request'],
    [JSON.stringify({ type: 'join', room: 'Not A Room' }), 'invalid_room'],
    [JSON.stringify({ type: 'send', room: 'general', text: '   ', clientId: 'c1' }), 'bad_request'],
    [JSON.stringify({ type: 'send', room: 'general', text: 'x'.repeat(11), clientId: 'c2' }), 'too_long'],
    [JSON.stringify({ type: 'send', room: 'general', text: 'hi', clientId: 'c 3' }), 'bad_request'],
    [JSON.stringify({ type: 'history', room: 'general', limit: 1000 }), 'bad_request'],
  ];
  for (const [raw, code] of cases) {
    alice.sendRaw(raw);
    const error = await alice.next((f) => f.type === 'error');
    assert.equal(error.code, code, raw);
    assert.equal(typeof error.message, 'string');
    assert.ok(error.ref, 'names the refused frame');
  }
  const tooLong = alice.frames.find((f) => f.code === 'too_long')!;
  assert.deepEqual(tooLong.ref, { type: 'send', room: 'general', clientId: 'c2' });
  assert.equal((await alice.say('general', 'still here', 'c4')).type, 'ack');
  alice.close();
});

test('a socket may be in at most 50 rooms', async (t) => {
  const server = await build(t);
  const alice = await connect(server, 'alice');
  for (let i = 0; i < 50; i++) alice.send({ type: 'join', room: `room-${i}` });
  for (let i = 0; i < 50; i++) await alice.next((f) => f.type === 'joined' && f.room === `room-${i}`);
  const refused = await alice.join('room-50').catch(() => null);
  assert.equal(refused, null);
  const error = alice.frames.find((f) => f.type === 'error')!;
  assert.equal(error.code, 'limit_exceeded');
  assert.deepEqual(error.ref, { type: 'join', room: 'room-50' });
  // Re-joining a room it is in is not a 51st.
  assert.equal((await alice.join('room-0')).type, 'joined');
  alice.close();
});

test('sends beyond a burst of 10 are rate limited with retryAfterMs, and nothing is stored', async (t) => {
  const server = await build(t);
  const alice = await connect(server, 'alice');
  await alice.join('general');
  for (let i = 0; i < 12; i++) alice.send({ type: 'send', room: 'general', text: `m${i}`, clientId: `c${i}` });
  const refused = await alice.next((f) => f.type === 'error');
  assert.equal(refused.code, 'rate_limited');
  assert.ok(typeof refused.retryAfterMs === 'number' && refused.retryAfterMs > 0 && refused.retryAfterMs <= 200);
  assert.deepEqual(refused.ref, { type: 'send', room: 'general', clientId: 'c10' });
  await alice.settle();
  assert.equal(alice.frames.filter((f) => f.type === 'ack').length, 10);
  assert.equal(alice.messages('general').length, 10);
  // After waiting as told, it goes through with the same clientId.
  await new Promise((resolve) => setTimeout(resolve, Number(refused.retryAfterMs)));
  assert.equal((await alice.say('general', 'm10', 'c10')).type, 'ack');
  alice.close();
});

test('a socket that keeps flooding is closed with 1008', async (t) => {
  const server = await build(t);
  const alice = await connect(server, 'alice');
  const bob = await connect(server, 'bob');
  await alice.join('general');
  await bob.join('general');
  for (let i = 0; i < 300; i++) alice.send({ type: 'typing', room: 'general' });
  const { code } = await alice.closed;
  assert.equal(code, 1008);
  // Everyone else carries on.
  assert.equal((await bob.say('general', 'still fine', 'b1')).type, 'ack');
  bob.close();
});

test('a frame over 16 KiB closes with 1009; 16 KiB exactly is fine', async (t) => {
  const server = await build(t);
  const alice = await connect(server, 'alice');
  const exact = JSON.stringify({ type: 'typing', room: 'general', pad: '' });
  alice.sendRaw(JSON.stringify({ type: 'typing', room: 'general', pad: 'x'.repeat(16 * 1024 - exact.length) }));
  assert.equal((await alice.next((f) => f.type === 'error')).code, 'not_joined');
  alice.sendRaw('x'.repeat(16 * 1024 + 1));
  assert.equal((await alice.closed).code, 1009);
});

test('a binary frame closes with 1003', async (t) => {
  const server = await build(t);
  const alice = await connect(server, 'alice');
  alice.sendRaw(Buffer.from(JSON.stringify({ type: 'join', room: 'general' })), { binary: true });
  assert.equal((await alice.closed).code, 1003);
});

test('the heartbeat keeps answering peers and drops silent ones', async (t) => {
  const server = await build(t, {}, { heartbeatMs: 50 });
  const lively = await connect(server, 'lively');
  const silent = await connect(server, 'silent');
  paused(silent).pause();
  const { code } = await Promise.race([
    silent.closed,
    new Promise<{ code: number }>((resolve) => {
      const check = setInterval(() => {
        if (server.app.chat.gateway.connections.size === 1) {
          clearInterval(check);
          resolve({ code: -1 });
        }
      }, 10);
    }),
  ]);
  assert.ok(code === -1 || code === 1006, `terminated, not closed politely (got ${code})`);
  assert.equal(lively.socket.readyState, WebSocket.OPEN, 'a peer that answers pings stays');
  assert.equal((await lively.join('general')).type, 'joined');
  lively.close();
});

test('an open socket keeps nothing of its upgrade request alive', async (t) => {
  const server = await build(t);
  const upgrades: Array<WeakRef<IncomingMessage>> = [];
  server.app.server.on('upgrade', (request: IncomingMessage) => upgrades.push(new WeakRef(request)));
  const clients = await Promise.all(['ann', 'ben', 'cat'].map((name) => connect(server, name)));
  await clients[0]!.join('general'); // the request is long done with once a frame is answered
  heapAfterGc();
  assert.equal(upgrades.length, 3);
  assert.equal(upgrades.filter((ref) => ref.deref() !== undefined).length, 0, 'requests still held by open sockets');
  for (const client of clients) assert.equal((await client.join('lobby')).type, 'joined', 'the sockets still work');
  for (const client of clients) client.close();
});

test('a reader that falls 1 MiB behind is closed with 1013 and can resume', async (t) => {
  const server = await build(t, { MAX_MESSAGE_LENGTH: '4000' });
  const slow = await connect(server, 'slow');
  const joined = await slow.join('flood');
  assert.equal(joined.type, 'joined');
  paused(slow).pause();

  const [slowOnServer] = server.app.chat.gateway.connections;
  assert.ok(slowOnServer);

  // 16 KB messages from short-lived senders (each may burst 10), until the server gives up on the reader.
  const { token } = await server.signIn('sender');
  const text = '😀'.repeat(4000);
  let sent = 0;
  let mostBuffered = 0;
  for (let round = 0; round < 200 && !slowOnServer.isClosing; round++) {
    mostBuffered = Math.max(mostBuffered, slowOnServer.buffered);
    const sender = await TestClient.connect(server.wsUrl, token);
    await sender.join('flood');
    for (let i = 0; i < 10; i++) sender.send({ type: 'send', room: 'flood', text, clientId: `r${round}-${i}` });
    await sender.next((f) => f.type === 'ack' && f.clientId === `r${round}-9`);
    sender.close();
    await sender.closed;
    sent += 10;
  }
  assert.ok(slowOnServer.isClosing, `cut after ${sent} messages`);
  // What the server holds for it is bounded: 1 MiB, plus the one frame written before the check.
  mostBuffered = Math.max(mostBuffered, slowOnServer.buffered);
  assert.ok(mostBuffered <= 1024 * 1024 + 20 * 1024, `held ${mostBuffered} bytes for the slow reader`);
  paused(slow).resume();
  const { code } = await slow.closed;
  assert.equal(code, 1013);

  // Nothing is lost: everything is in the history, and a resume or paging finds it.
  const back = await TestClient.connect(server.wsUrl, slow.token);
  const last = slow.messages('flood').at(-1);
  const resumed = await back.join('flood', last ? String(last.id) : undefined);
  const haveIds = new Set([...slow.messages('flood'), ...(resumed.messages as Array<{ id: string }>)].map((m) => String(m.id)));
  if (!resumed.resumed) {
    // Too much to replay in one frame: the client pages back through history instead.
    let before = (resumed.messages as Array<{ id: string }>)[0]?.id;
    for (let page = 0; page < 100 && before; page++) {
      back.send({ type: 'history', room: 'flood', before, limit: 100 });
      const history = await back.next((f) => f.type === 'history');
      for (const m of history.messages as Array<{ id: string }>) haveIds.add(String(m.id));
      before = history.hasMore ? (history.messages as Array<{ id: string }>)[0]?.id : undefined;
    }
  }
  assert.equal(haveIds.size, sent, 'every stored message reaches the slow reader in the end');
  back.close();
});

test('health, readiness, rooms and metrics', async (t) => {
  const server = await build(t);
  assert.deepEqual(await (await fetch(`${server.url}/healthz`)).json(), { status: 'ok' });
  assert.deepEqual(await (await fetch(`${server.url}/readyz`)).json(), { status: 'ready' });
  const alice = await connect(server, 'alice');
  await alice.join('general');
  await alice.say('general', 'hi', 'c1');
  alice.sendRaw('{oops');
  await alice.next((f) => f.type === 'error');
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /^chatter_connections 1$/m);
  assert.match(metrics, /^chatter_messages_received_total 1$/m);
  assert.match(metrics, /^chatter_messages_delivered_total 1$/m);
  assert.match(metrics, /^chatter_errors_total\{code="bad_request"\} 1$/m);
  assert.match(metrics, /^chatter_redis_connected 0$/m);
  assert.match(metrics, /^chatter_delivery_seconds_count 1$/m);
  const rooms = await (await fetch(`${server.url}/api/rooms`)).json();
  assert.equal(rooms.rooms[0].name, 'general');
  assert.equal(rooms.rooms[0].online, 1);
  assert.equal(typeof rooms.rooms[0].lastMessageAt, 'number');
  alice.close();
});

async function until(condition: () => boolean, waitMs = 5000): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
