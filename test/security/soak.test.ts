// A bounded churn of a few hundred clients connecting, joining, sending and leaving (politely or
// by vanishing) for SOAK_SECONDS (default 45): no errors, and afterwards nothing left behind:
// no sockets, counts, rooms, presence, timers or listeners, and the heap back near its baseline.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStore } from '../../src/server/store/memory';
import { build } from '../helpers/app';
import { heapAfterGc } from '../helpers/heap';
import { TestClient } from '../helpers/ws';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 45);
const USERS = 300;
const WORKERS = 100;
const ROOMS = Array.from({ length: 20 }, (_, i) => `soak-${i}`);

function resources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

test(`soak: ${USERS} users churning for ${SECONDS} s leave no trace`, { timeout: (SECONDS + 60) * 1000 }, async (t) => {
  // History bounded small, and a clock the test can move past the 10-minute dedupe window, so
  // that what stays in memory afterwards is what the soak is about: leaks.
  let clockOffsetMs = 0;
  const memory = new MemoryStore({ historyLimit: 50, now: () => Date.now() + clockOffsetMs });
  // A short presence grace, so that dropped users are gone soon after the churn stops.
  const server = await build(t, {}, { store: memory, presenceGraceMs: 50 });
  const { gateway, hub, store } = server.app.chat;
  const users = await Promise.all(Array.from({ length: USERS }, (_, i) => server.signIn(`soak${i}`)));

  const warm = await TestClient.connect(server.wsUrl, users[0]!.token);
  await warm.join(ROOMS[0]!);
  warm.close();
  await warm.closed;
  await until(() => gateway.connections.size === 0 && hub.size === 0 && hub.graceCount === 0);
  const baseline = { heap: heapAfterGc(), resources: resources(), listeners: server.app.server.listenerCount('upgrade') };

  const problems: string[] = [];
  const stats = { sessions: 0, messages: 0, vanished: 0 };
  const stopAt = Date.now() + SECONDS * 1000;
  const worker = async (w: number) => {
    for (let round = 0; Date.now() < stopAt && round < 10_000; round++) {
      const user = users[(w + round * WORKERS) % USERS]!;
      const client = await TestClient.connect(server.wsUrl, user.token);
      const rooms = [...new Set([ROOMS[(w + round) % ROOMS.length]!, ROOMS[(w * 7 + round) % ROOMS.length]!])];
      for (const room of rooms) await client.join(room);
      for (let i = 0; i < 2; i++) {
        const ack = await client.say(rooms[i % rooms.length]!, `round ${round} from ${w}`, `w${w}-r${round}-${i}`);
        if (ack.type !== 'ack') problems.push(JSON.stringify(ack));
        stats.messages++;
      }
      client.send({ type: 'typing', room: rooms[0]! });
      client.send({ type: 'history', room: rooms[0]!, limit: 5 });
      await client.next((f) => f.type === 'history');
      for (const frame of client.frames) if (frame.type === 'error') problems.push(JSON.stringify(frame));
      if (round % 4 === 3) {
        client.socket.terminate(); // gone without a goodbye
        stats.vanished++;
      } else {
        client.close();
      }
      await client.closed;
      stats.sessions++;
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));

  assert.deepEqual(problems.slice(0, 5), [], 'no errors during the soak');
  await until(() => gateway.connections.size === 0 && hub.size === 0 && hub.graceCount === 0);
  assert.equal(gateway.socketsPerUser.size, 0, 'no socket counts held');
  assert.equal(gateway.socketsPerIp.size, 0);
  for (const room of ROOMS) assert.deepEqual(await store.present(room), [], `nobody left present in ${room}`);
  assert.equal(server.app.server.listenerCount('upgrade'), baseline.listeners, 'no listeners left behind');
  const after = resources();
  for (const kind of new Set([...Object.keys(after), ...Object.keys(baseline.resources)])) {
    assert.ok((after[kind] ?? 0) <= (baseline.resources[kind] ?? 0) + 2, `${kind}: ${baseline.resources[kind] ?? 0} before, ${after[kind]} after`);
  }
  // Ten minutes later the dedupe keys have expired; the next send sweeps them.
  clockOffsetMs = 11 * 60_000;
  const last = await TestClient.connect(server.wsUrl, users[0]!.token);
  await last.join(ROOMS[0]!);
  assert.equal((await last.say(ROOMS[0]!, 'after the soak', 'last')).type, 'ack');
  last.close();
  await last.closed;
  await until(() => gateway.connections.size === 0 && hub.size === 0 && hub.graceCount === 0);

  const grown = heapAfterGc() - baseline.heap;
  t.diagnostic(`${stats.sessions} socket sessions (${stats.vanished} vanished), ${stats.messages} messages; heap +${(grown / 1048576).toFixed(2)} MiB after GC`);
  assert.ok(grown < 8 * 1024 * 1024, `heap grew by ${(grown / 1048576).toFixed(1)} MiB`);
});

async function until(condition: () => boolean, waitMs = 10_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
