// The Redis store against a real redis-server of the test's own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ChatMessage, User } from '../../../src/server/chat/protocol';
import { createLogger } from '../../../src/server/logger';
import { createClient } from 'redis';
import { REPLICAS_KEY, RedisStore, replicaRoomsKey } from '../../../src/server/store/redis';
import { StoreUnavailableError, fromFeed, type PresenceChange, type StoreListener } from '../../../src/server/store/store';
import { RedisServer } from '../../helpers/redis';

const alice = { id: 'alice-id', name: 'alice' };
const bob = { id: 'bob-id', name: 'bøb "quoted"' };

interface Heard {
  messages: Array<[string, ChatMessage]>;
  presence: Array<[string, PresenceChange]>;
  typing: Array<[string, User]>;
  resyncs: number;
}

interface OpenOptions {
  historyLimit?: number;
  replicaId?: string;
  lease?: { ms: number; renewMs: number };
  commandTimeoutMs?: number;
}

async function open(t: { after(fn: () => unknown): void }, url: string, options: OpenOptions = {}) {
  const store = new RedisStore({ url, historyLimit: options.historyLimit ?? 100, replicaId: options.replicaId ?? 'r1', log: createLogger('silent'), lease: options.lease, commandTimeoutMs: options.commandTimeoutMs });
  const heard: Heard = { messages: [], presence: [], typing: [], resyncs: 0 };
  const listener: StoreListener = {
    message: (room, m) => heard.messages.push([room, fromFeed(m)]),
    presence: (room, change) => heard.presence.push([room, change]),
    typing: (room, user) => heard.typing.push([room, user]),
    resync: () => heard.resyncs++,
    readiness: () => {},
  };
  store.setListener(listener);
  store.start();
  t.after(() => store.close());
  await until(() => store.readiness().ready);
  return { store, heard };
}

async function until(condition: () => boolean, waitMs = 10_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('append stores, dedupes per user and room, and publishes in stream order', async (t) => {
  const redis = await RedisServer.start(t, { persistent: false });
  const { store, heard } = await open(t, redis.url);
  await store.subscribe('general');
  const first = await store.append('general', alice, 'hello', 'c1');
  assert.equal(first.duplicate, false);
  assert.match(first.id, /^\d+-\d+$/);
  assert.deepEqual(await store.append('general', alice, 'again', 'c1'), { id: first.id, duplicate: true });
  assert.equal((await store.append('general', bob, 'hi', 'c1')).duplicate, false, 'another user');
  await until(() => heard.messages.length === 2);
  assert.deepEqual(heard.messages[0], ['general', { id: first.id, ts: Number(first.id.split('-')[0]), user: alice, text: 'hello', clientId: 'c1' }]);
  assert.deepEqual(heard.messages[1]![1].user, bob, 'names with quotes and non-ASCII survive');
  const { messages } = await store.before('general', undefined, 10);
  assert.deepEqual(messages, heard.messages.map(([, m]) => m));
});

test('history pages back; after() vouches only for what the stream provably holds', async (t) => {
  const redis = await RedisServer.start(t, { persistent: false });
  const { store } = await open(t, redis.url, { historyLimit: 50 });
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) ids.push((await store.append('r', alice, `m${i}`, `c${i}`)).id);
  const page = await store.before('r', ids[5], 3);
  assert.deepEqual(page.messages.map((m) => m.text), ['m2', 'm3', 'm4']);
  assert.equal(page.hasMore, true);
  assert.deepEqual((await store.after('r', ids[7]!, 100))!.map((m) => m.text), ['m8', 'm9']);
  assert.deepEqual((await store.after('r', null, 100))!.length, 10, 'from the beginning of an untrimmed stream');
  assert.equal(await store.after('r', '1-0', 100), null, 'an id the stream never held');
  assert.equal(await store.after('r', ids[0]!, 5), null, 'more than the limit');
  assert.deepEqual(await store.after('empty', null, 100), [], 'a room without messages');

  // Trimming (MAXLEN ~ trims whole nodes of 100 entries) takes the oldest away.
  for (let i = 10; i < 400; i++) await store.append('r', alice, `m${i}`, `c${i}`);
  assert.equal(await store.after('r', ids[0]!, 1000), null, 'trimmed away');
  assert.equal(await store.after('r', null, 1000), null, 'the beginning is gone');
  const kept = await store.before('r', undefined, 100);
  assert.equal(kept.messages.at(-1)!.text, 'm399');
});

test('a Redis that restarted empty is detected: since is unknown', async (t) => {
  const redis = await RedisServer.start(t, { persistent: false });
  const { store, heard } = await open(t, redis.url);
  await store.subscribe('r');
  const { id } = await store.append('r', alice, 'before the crash', 'c1');
  await redis.kill();
  await until(() => !store.readiness().ready);
  await assert.rejects(store.append('r', alice, 'during', 'c2'), 'refused while down, never queued');
  await redis.restart();
  await until(() => store.readiness().ready);
  await until(() => heard.resyncs === 1);
  assert.equal(await store.after('r', id, 100), null);
  // The feed was re-subscribed: new messages arrive live again.
  await store.append('r', alice, 'after', 'c3');
  await until(() => heard.messages.some(([, m]) => m.text === 'after'));
});

test('presence is by user across replicas; typing and the room list go through Redis', async (t) => {
  const redis = await RedisServer.start(t, { persistent: false });
  const one = await open(t, redis.url, { replicaId: 'r1' });
  const two = await open(t, redis.url, { replicaId: 'r2' });
  await one.store.subscribe('room');
  await one.store.enter('room', alice);
  await two.store.enter('room', alice);
  await two.store.enter('room', bob);
  assert.deepEqual(new Set((await one.store.present('room')).map((u) => u.name)), new Set(['alice', bob.name]));
  await until(() => one.heard.presence.length === 2);
  assert.deepEqual(one.heard.presence.map(([, c]) => c), [
    { joined: [alice], left: [] },
    { joined: [bob], left: [] },
  ]);
  await one.store.exit('room', alice);
  assert.equal((await one.store.present('room')).length, 2, 'alice is still held by r2');
  await two.store.exit('room', alice);
  await until(() => one.heard.presence.length === 3);
  assert.deepEqual(one.heard.presence[2]![1], { joined: [], left: [alice] });
  const rooms = await one.store.rooms(10);
  assert.deepEqual(rooms, [{ name: 'room', online: 1, lastMessageAt: null }]);

  one.store.typing('room', bob);
  await until(() => one.heard.typing.length === 1);
  assert.deepEqual(one.heard.typing[0], ['room', bob]);
});

test('after Redis loses its data, the replica holds a crowded room again: every user, in a few presence changes', async (t) => {
  const redis = await RedisServer.start(t, { persistent: false });
  const { store, heard } = await open(t, redis.url);
  const crowd = Array.from({ length: 250 }, (_, i) => ({ id: `user-${i}`, name: `user ${i}` }));
  await store.subscribe('hall');
  for (const user of crowd) await store.enter('hall', user);
  assert.equal((await store.present('hall')).length, 250);
  await until(() => heard.presence.length === 250);

  await redis.kill();
  await redis.restart();
  await until(() => heard.resyncs === 1);
  // Re-entered in batches (of 100): far fewer calls, and far fewer presence changes, than users.
  await until(() => heard.presence.length > 250 && heard.presence.slice(250).flatMap(([, c]) => c.joined).length === 250);
  const announced = heard.presence.slice(250).map(([, change]) => change);
  assert.ok(announced.length <= 3, `${announced.length} presence changes for 250 users`);
  assert.deepEqual(new Set(announced.flatMap((change) => change.joined.map((u) => u.id))), new Set(crowd.map((u) => u.id)));
  assert.deepEqual(new Set((await store.present('hall')).map((u) => u.name)), new Set(crowd.map((u) => u.name)));

  // Entering again a user still held announces no one.
  const before = heard.presence.length;
  await store.enter('hall', crowd[0]!);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(heard.presence.length, before);
});

test('a replica whose lease runs out has its users released by another, once, and holds them again when it renews', async (t) => {
  const redis = await RedisServer.start(t, { persistent: false });
  // r1 renews every second but its lease lasts 200 ms: it looks dead for most of each second,
  // as a replica paused (or cut off) past its lease does. r2 looks for expired leases often.
  const one = await open(t, redis.url, { replicaId: 'r1', lease: { ms: 200, renewMs: 1000 } });
  const two = await open(t, redis.url, { replicaId: 'r2', lease: { ms: 5000, renewMs: 50 } });
  await two.store.subscribe('room');
  await one.store.enter('room', alice);
  await two.store.enter('room', bob);
  await until(() => two.heard.presence.length === 2);

  const changes = () => two.heard.presence.slice(2).map(([, change]) => change);
  await until(() => changes().length >= 1);
  assert.deepEqual(changes()[0], { joined: [], left: [alice] }, 'alice leaves: only r1 held her');
  assert.deepEqual(await two.store.present('room'), [bob], 'bob, held by a live replica, stays');
  await until(() => changes().length >= 2, 5000);
  assert.deepEqual(changes()[1], { joined: [alice], left: [] }, 'r1 renews, finds its lease was taken, and holds alice again');
  assert.deepEqual(new Set((await two.store.present('room')).map((u) => u.id)), new Set([alice.id, bob.id]));
});

test('a replica that says goodbye takes its lease and its room index with it', async (t) => {
  const redis = await RedisServer.start(t, { persistent: false });
  const one = await open(t, redis.url, { replicaId: 'r1' });
  const two = await open(t, redis.url, { replicaId: 'r2' });
  await two.store.subscribe('room');
  await one.store.enter('room', alice);
  await until(() => two.heard.presence.length === 1);
  await one.store.close();
  await until(() => two.heard.presence.length === 2);
  assert.deepEqual(two.heard.presence[1]![1], { joined: [], left: [alice] });
  const raw = createClient({ url: redis.url });
  await raw.connect();
  try {
    assert.deepEqual(await raw.zRange(REPLICAS_KEY, 0, -1), ['r2']);
    assert.equal(await raw.exists(replicaRoomsKey('r1')), 0);
    assert.deepEqual(await raw.keys('chatter:{room}:held:*'), [], 'nobody is held in the room any more');
  } finally {
    await raw.close();
  }
});

test('a Redis that hangs: sends fail at their deadline and are refused until it answers, and a retry is stored once', async (t) => {
  const redis = await RedisServer.start(t, { persistent: false });
  t.after(() => redis.resume()); // never leave a stopped process behind
  const { store, heard } = await open(t, redis.url, { commandTimeoutMs: 300 });
  await store.subscribe('general');
  await store.append('general', alice, 'before', 'c1');

  redis.pause();
  await assert.rejects(store.append('general', alice, 'during', 'c2'), 'the send waiting on a hung Redis fails');
  assert.equal(store.readiness().ready, false, 'not ready while Redis does not answer');
  await assert.rejects(store.append('general', alice, 'meanwhile', 'c3'), StoreUnavailableError, 'later sends are refused at once');

  redis.resume();
  await until(() => store.readiness().ready, 5000);
  // The send that timed out had reached Redis, which ran it on waking. Sent again, as a client
  // does after `unavailable`, it is acked with that id and not stored twice.
  const retried = await store.append('general', alice, 'during', 'c2');
  assert.equal(retried.duplicate, true);
  const { messages } = await store.before('general', undefined, 10);
  assert.deepEqual(messages.map((m) => m.text), ['before', 'during']);
  await until(() => heard.messages.length === 2);
});
