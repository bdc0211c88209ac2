import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStore } from '../../../src/server/store/memory';
import { fromFeed } from '../../../src/server/store/store';

const alice = { id: 'a', name: 'alice' };
const bob = { id: 'b', name: 'bob' };

function clock(start: number) {
  const state = { now: start };
  return { state, now: () => state.now };
}

test('ids grow strictly within a room, even when the clock stalls or steps back', async () => {
  const time = clock(1000);
  const store = new MemoryStore({ historyLimit: 100, now: time.now });
  const ids = [];
  ids.push((await store.append('r', alice, 'a', 'c1')).id);
  ids.push((await store.append('r', alice, 'b', 'c2')).id);
  time.state.now = 900;
  ids.push((await store.append('r', alice, 'c', 'c3')).id);
  time.state.now = 2000;
  ids.push((await store.append('r', alice, 'd', 'c4')).id);
  assert.deepEqual(ids, ['1000-0', '1000-1', '1000-2', '2000-0']);
});

test('a repeated clientId of the same user and room is not stored again for 10 minutes', async () => {
  const time = clock(1000);
  const store = new MemoryStore({ historyLimit: 100, now: time.now });
  const first = await store.append('r', alice, 'hi', 'same');
  assert.deepEqual(await store.append('r', alice, 'hi again', 'same'), { id: first.id, duplicate: true });
  assert.equal((await store.append('r', bob, 'hi', 'same')).duplicate, false, 'other user');
  assert.equal((await store.append('other', alice, 'hi', 'same')).duplicate, false, 'other room');
  time.state.now += 10 * 60 * 1000;
  assert.equal((await store.append('r', alice, 'later', 'same')).duplicate, false, 'after the window');
  assert.equal((await store.before('r', undefined, 50)).messages.length, 3);
});

test('history pages backwards, oldest first in each page', async () => {
  const time = clock(1000);
  const store = new MemoryStore({ historyLimit: 100, now: time.now });
  const ids: string[] = [];
  for (let i = 0; i < 7; i++) {
    time.state.now++;
    ids.push((await store.append('r', alice, `m${i}`, `c${i}`)).id);
  }
  const latest = await store.before('r', undefined, 3);
  assert.deepEqual(latest.messages.map((m) => m.text), ['m4', 'm5', 'm6']);
  assert.equal(latest.hasMore, true);
  const older = await store.before('r', ids[4], 3);
  assert.deepEqual(older.messages.map((m) => m.text), ['m1', 'm2', 'm3']);
  const oldest = await store.before('r', ids[1], 3);
  assert.deepEqual(oldest.messages.map((m) => m.text), ['m0']);
  assert.equal(oldest.hasMore, false);
  assert.deepEqual(await store.before('nowhere', undefined, 3), { messages: [], hasMore: false });
});

test('after() returns what follows a known id, and null when it cannot vouch for completeness', async () => {
  const store = new MemoryStore({ historyLimit: 5 });
  const ids: string[] = [];
  for (let i = 0; i < 8; i++) ids.push((await store.append('r', alice, `m${i}`, `c${i}`)).id);
  // Kept: m3..m7. m2 was the last one trimmed.
  assert.deepEqual((await store.after('r', ids[5]!, 100))!.map((m) => m.text), ['m6', 'm7']);
  assert.deepEqual((await store.after('r', ids[7]!, 100))!, []);
  assert.deepEqual((await store.after('r', ids[2]!, 100))!.map((m) => m.text), ['m3', 'm4', 'm5', 'm6', 'm7']);
  assert.equal(await store.after('r', ids[1]!, 100), null, 'trimmed away');
  assert.equal(await store.after('r', '99999999999999-0', 100), null, 'unknown (a restart lost it)');
  assert.equal(await store.after('nowhere', ids[5]!, 100), null);
  assert.equal(await store.after('r', ids[3]!, 2), null, 'more than the limit');
});

test('the live feed reaches a subscribed room only, with presence by user', async () => {
  const store = new MemoryStore({ historyLimit: 100 });
  const seen: string[] = [];
  store.setListener({
    message: (room, m) => seen.push(`message ${room} ${fromFeed(m).text}`),
    presence: (room, change) => seen.push(`presence ${room} +${change.joined.map((u) => u.name)} -${change.left.map((u) => u.name)}`),
    typing: (room, user) => seen.push(`typing ${room} ${user.name}`),
    resync: () => {},
    readiness: () => {},
  });
  await store.append('quiet', alice, 'unheard', 'c0');
  await store.subscribe('r');
  await store.enter('r', alice);
  await store.enter('r', alice);
  await store.append('r', alice, 'heard', 'c1');
  store.typing('r', alice);
  await store.exit('r', alice);
  await store.exit('r', alice);
  assert.deepEqual(seen, ['presence r +alice -', 'message r heard', 'typing r alice', 'presence r + -alice']);
});

test('rooms are listed most recently active first with online counts', async () => {
  const time = clock(1000);
  const store = new MemoryStore({ historyLimit: 100, now: time.now });
  await store.append('old', alice, 'x', 'c1');
  time.state.now = 2000;
  await store.append('new', alice, 'x', 'c2');
  await store.enter('quiet', bob);
  await store.enter('old', alice);
  await store.enter('old', bob);
  assert.deepEqual(await store.rooms(10), [
    { name: 'new', online: 0, lastMessageAt: 2000 },
    { name: 'old', online: 2, lastMessageAt: 1000 },
    { name: 'quiet', online: 1, lastMessageAt: null },
  ]);
  assert.equal((await store.rooms(1)).length, 1);
  await store.exit('quiet', bob);
  assert.deepEqual((await store.rooms(10)).map((r) => r.name), ['new', 'old'], 'an empty room without messages is forgotten');
});
