// Three replicas of the built server and one redis-server, all real processes: one chat, nothing
// lost, nothing doubled, through Redis crashes and replica deaths.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { RedisServer } from '../helpers/redis';
import { signIn, startServer, type ServerProcess } from '../helpers/process';
import { TestClient } from '../helpers/ws';

async function cluster(t: TestContext, size = 3) {
  const redis = await RedisServer.start(t);
  const replicas = await Promise.all(Array.from({ length: size }, () => startServer({ env: { REDIS_URL: redis.url } })));
  t.after(() => Promise.all(replicas.map((replica) => replica.stop('SIGKILL'))));
  await Promise.all(replicas.map((replica) => readiness(replica, 200)));
  return { redis, replicas };
}

/** Waits (bounded) until /readyz answers `status`. */
async function readiness(replica: ServerProcess, status: number, waitMs = 15_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const answer = await fetch(`${replica.url}/readyz`).then((r) => r.status, () => 0);
    if (answer === status) return;
    if (Date.now() > deadline) throw new Error(`${replica.url}/readyz stayed ${answer}, expected ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function until(condition: () => boolean, what: string, waitMs = 15_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const ids = (client: TestClient, room: string) => client.messages(room).map((m) => String(m.id));

function assertIdOrder(list: string[]): void {
  for (let i = 1; i < list.length; i++) {
    const [ms, seq] = list[i]!.split('-').map(Number) as [number, number];
    const [prevMs, prevSeq] = list[i - 1]!.split('-').map(Number) as [number, number];
    assert.ok(ms > prevMs || (ms === prevMs && seq > prevSeq), `ids grow strictly: ${list[i - 1]} then ${list[i]}`);
  }
}

test('clients on different replicas see each other\'s messages, presence and typing', async (t) => {
  const { replicas } = await cluster(t);
  const people = await Promise.all(
    ['alice', 'bob', 'carol'].map(async (name, i) => {
      const { token, user } = await signIn(replicas[i]!.url, name);
      return Object.assign(await TestClient.connect(replicas[i]!.wsUrl, token), { user, token });
    }),
  );
  const [alice, bob, carol] = people as [typeof people[0], typeof people[0], typeof people[0]];
  assert.equal(new Set(people.map((p) => p.frames[0]!.replica)).size, 3, 'three different replicas');

  await alice.join('general');
  await bob.join('general');
  assert.deepEqual((await alice.next((f) => f.type === 'presence')).joined, [bob.user]);
  const carolJoined = await carol.join('general');
  assert.equal((carolJoined.users as unknown[]).length, 3);

  const ack = await carol.say('general', 'hello from replica 3', 'c1');
  for (const person of people) {
    const message = await person.seen((f) => f.type === 'message' && f.id === ack.id);
    assert.equal(message.text, 'hello from replica 3');
    assert.deepEqual(message.user, carol.user);
  }
  bob.send({ type: 'typing', room: 'general' });
  assert.deepEqual((await alice.next((f) => f.type === 'typing')).user, bob.user);
  assert.deepEqual((await carol.next((f) => f.type === 'typing')).user, bob.user);

  for (const replica of replicas) {
    const { rooms } = await (await fetch(`${replica.url}/api/rooms`)).json();
    assert.deepEqual(rooms.map((r: { name: string; online: number }) => [r.name, r.online]), [['general', 3]], 'counted across replicas');
  }
  for (const person of people) person.close();
});

test('900 messages from three replicas at once reach every socket exactly once, in one order', async (t) => {
  const { replicas } = await cluster(t);
  // 30 sockets per replica, so that all 300 sends fit the per-socket burst.
  const sockets: TestClient[] = [];
  for (let s = 0; s < 3; s++) {
    // Three users with 10 sockets each, within MAX_SOCKETS_PER_USER.
    for (let u = 0; u < 3; u++) {
      const { token } = await signIn(replicas[s]!.url, `sender${s}-${u}`);
      for (let i = 0; i < 10; i++) sockets.push(await TestClient.connect(replicas[s]!.wsUrl, token));
    }
  }
  const observers = await Promise.all(replicas.map(async (replica, r) => TestClient.connect(replica.wsUrl, (await signIn(replica.url, `observer${r}`)).token)));
  for (const client of [...sockets, ...observers]) await client.join('load');

  const acks = await Promise.all(sockets.flatMap((socket, n) => Array.from({ length: 10 }, (_, i) => socket.say('load', `s${n}-${i}`, `k${n}-${i}`, 30_000))));
  assert.ok(acks.every((ack) => ack.type === 'ack'), 'every send acknowledged');
  const all = acks.map((ack) => String(ack.id));
  assert.equal(new Set(all).size, 900);

  const everyone = [...sockets, ...observers];
  await until(() => everyone.every((client) => client.messages('load').length >= 900), 'all deliveries');
  const reference = ids(observers[0]!, 'load');
  assertIdOrder(reference);
  assert.deepEqual([...reference].sort(), [...all].sort(), 'the acked messages, each once');
  for (const client of everyone) {
    await client.settle();
    assert.deepEqual(ids(client, 'load'), reference, 'same order, no duplicates, on every socket');
  }
  for (const client of everyone) client.close();
});

test('resume on another replica returns exactly the missed messages', async (t) => {
  const { replicas } = await cluster(t);
  const { token } = await signIn(replicas[0]!.url, 'reader');
  const writer = await TestClient.connect(replicas[1]!.wsUrl, (await signIn(replicas[1]!.url, 'writer')).token);
  await writer.join('general');
  const reader = await TestClient.connect(replicas[0]!.wsUrl, token);
  await reader.join('general');
  const seen = await writer.say('general', 'seen by both', 'c0');
  await reader.seen((f) => f.type === 'message' && f.id === seen.id);
  reader.close();
  await reader.closed;

  const missed = [];
  for (let i = 1; i <= 5; i++) missed.push(String((await writer.say('general', `missed ${i}`, `c${i}`)).id));

  const back = await TestClient.connect(replicas[2]!.wsUrl, token);
  const joined = await back.join('general', String(seen.id));
  assert.equal(joined.resumed, true);
  assert.deepEqual((joined.messages as Array<{ id: string }>).map((m) => m.id), missed);
  const live = await writer.say('general', 'live again', 'c6');
  await back.seen((f) => f.type === 'message' && f.id === live.id);
  await back.settle();
  assert.deepEqual(ids(back, 'general'), [String(live.id)]);
  writer.close();
  back.close();
});

test('the same clientId sent to two replicas is stored once', async (t) => {
  const { replicas } = await cluster(t);
  const { token } = await signIn(replicas[0]!.url, 'alice');
  const [onFirst, onSecond] = await Promise.all([TestClient.connect(replicas[0]!.wsUrl, token), TestClient.connect(replicas[1]!.wsUrl, token)]);
  const observer = await TestClient.connect(replicas[2]!.wsUrl, (await signIn(replicas[2]!.url, 'observer')).token);
  for (const client of [onFirst, onSecond, observer]) await client.join('general');
  const [a, b] = await Promise.all([onFirst.say('general', 'once', 'same'), onSecond.say('general', 'once', 'same')]);
  assert.equal(a.id, b.id);
  const marker = await observer.say('general', 'after', 'marker');
  await observer.seen((f) => f.type === 'message' && f.id === marker.id);
  assert.deepEqual(observer.messages('general').map((m) => m.text), ['once', 'after']);
  for (const client of [onFirst, onSecond, observer]) client.close();
});

test('Redis killed mid-traffic and restarted: sends are refused meanwhile, no acked message is missing', async (t) => {
  const { redis, replicas } = await cluster(t);
  const observers = await Promise.all(replicas.map(async (replica, r) => TestClient.connect(replica.wsUrl, (await signIn(replica.url, `observer${r}`)).token)));
  for (const observer of observers) await observer.join('general');
  const senders = await Promise.all(replicas.map(async (replica, r) => TestClient.connect(replica.wsUrl, (await signIn(replica.url, `sender${r}`)).token)));
  for (const sender of senders) await sender.join('general');

  const acked = new Set<string>();
  let refusals = 0;
  let killed = false;
  // Like the real client: a refused message is sent again with the same clientId until acked.
  const sendAll = async (sender: TestClient, s: number) => {
    for (let i = 0; i < 20; i++) {
      const clientId = `s${s}-${i}`;
      const deadline = Date.now() + 30_000;
      for (;;) {
        const answer = await sender.say('general', `message ${clientId}`, clientId);
        if (answer.type === 'ack') {
          acked.add(String(answer.id));
          break;
        }
        assert.equal(answer.code, 'unavailable', JSON.stringify(answer));
        refusals++;
        if (Date.now() > deadline) throw new Error('Redis never came back');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await new Promise((resolve) => setTimeout(resolve, 210)); // within 5 sends a second
    }
  };
  const traffic = Promise.all(senders.map(sendAll));

  await until(() => acked.size >= 15, 'traffic before the crash');
  await redis.kill();
  killed = true;
  await Promise.all(replicas.map((replica) => readiness(replica, 503)));
  await until(() => refusals > 0, 'a refused send during the outage');
  await redis.restart();
  await Promise.all(replicas.map((replica) => readiness(replica, 200)));
  await traffic;
  assert.ok(killed);
  assert.equal(acked.size, 60);

  await until(() => observers.every((o) => o.messages('general').length >= acked.size), 'every acked message at every observer', 20_000);
  const reference = ids(observers[0]!, 'general');
  assertIdOrder(reference);
  for (const observer of observers) {
    const list = ids(observer, 'general');
    assert.equal(new Set(list).size, list.length, 'no duplicates');
    for (const id of acked) assert.ok(list.includes(id), `acked ${id} reached the observer`);
    assert.deepEqual(list, reference);
  }
  for (const client of [...observers, ...senders]) client.close();
});

test('a replica SIGKILLed: its clients resume elsewhere with nothing missing, its users leave within 30 s', async (t) => {
  const { replicas } = await cluster(t);
  const [doomed, survivor, other] = replicas as [ServerProcess, ServerProcess, ServerProcess];
  const bob = await TestClient.connect(survivor.wsUrl, (await signIn(survivor.url, 'bob')).token);
  await bob.join('general');
  const { token: aliceToken } = await signIn(doomed.url, 'alice');
  const alice = await TestClient.connect(doomed.wsUrl, aliceToken);
  await alice.join('general');
  const carolSession = await signIn(doomed.url, 'carol');
  const carol = await TestClient.connect(doomed.wsUrl, carolSession.token);
  await carol.join('general');
  const seen = await bob.say('general', 'before', 'b0');
  await alice.seen((f) => f.type === 'message' && f.id === seen.id);

  await doomed.stop('SIGKILL');
  await alice.closed;
  const missed = [];
  for (let i = 1; i <= 3; i++) missed.push(String((await bob.say('general', `while away ${i}`, `b${i}`)).id));

  const back = await TestClient.connect(other.wsUrl, aliceToken);
  const joined = await back.join('general', String(seen.id));
  assert.equal(joined.resumed, true);
  assert.deepEqual((joined.messages as Array<{ id: string }>).map((m) => m.id), missed);

  // Carol did not come back: she leaves everyone's list once her replica's entries expire.
  const left = await bob.next((f) => f.type === 'presence' && (f.left as Array<{ id: string }>).some((u) => u.id === carolSession.user.id), 30_000);
  assert.ok(left);
  const users = ((await back.join('general')).users as Array<{ name: string }>).map((u) => u.name).sort();
  assert.deepEqual(users, ['alice', 'bob']);
  bob.close();
  back.close();
});

test('a replica SIGTERMed drains: 1012 to its sockets, and its users leave at once', async (t) => {
  const { replicas } = await cluster(t, 2);
  const [leaving, staying] = replicas as [ServerProcess, ServerProcess];
  const bob = await TestClient.connect(staying.wsUrl, (await signIn(staying.url, 'bob')).token);
  await bob.join('general');
  const dave = await TestClient.connect(leaving.wsUrl, (await signIn(leaving.url, 'dave')).token);
  await dave.join('general');
  await bob.next((f) => f.type === 'presence');

  leaving.child.kill('SIGTERM');
  assert.equal((await dave.closed).code, 1012);
  // Well inside the 20 s expiry: this is the drain's goodbye, not a timeout.
  const left = await bob.next((f) => f.type === 'presence', 10_000);
  assert.deepEqual((left.left as Array<{ name: string }>).map((u) => u.name), ['dave']);
  assert.equal(await leaving.exited, 0);
  bob.close();
});
