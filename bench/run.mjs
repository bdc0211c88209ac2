// `npm run bench`: Chatter against the peer people would pick instead (Socket.IO 4 with the Redis
// adapter, bench/peers/), on the same work, in one run, on this machine.
//
// Each server in turn gets its own redis-server and 2 replicas, all pinned to core 0; the load
// generator (bench/loadgen.mjs) runs pinned to core 1. Server CPU is read from /proc for the
// replicas and Redis together. Output: a table on stdout and bench/results/<time>.json.
//
//   npm run bench                  the full run (about 6 minutes)
//   npm run bench -- --quick       small sizes, under a minute (the test suite runs this)
//   npm run bench -- --only fanout,idle     some scenarios only
//   npm run bench -- --servers peer         one server only (no comparison table)
//   npm run bench -- --only rooms --steps 250,500   other rate steps (for fanout and rooms)
import { fork, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const ONLY = argv.includes('--only') ? argv[argv.indexOf('--only') + 1].split(',') : null;
const KINDS = argv.includes('--servers') ? argv[argv.indexOf('--servers') + 1].split(',') : ['chatter', 'peer'];
const OUT = argv.includes('--out') ? argv[argv.indexOf('--out') + 1] : join(ROOT, 'bench/results', `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
/** Every wait in this file is bounded; the whole run is too. */
const RUN_LIMIT_MS = QUICK ? 120_000 : 20 * 60_000;

const PLAN = QUICK
  ? {
      fanout: { members: 40, steps: [20, 50], seconds: 2, drainMs: 2000 },
      rooms: { rooms: 20, perRoom: 4, steps: [20, 50], seconds: 2, drainMs: 2000 },
      idle: { sockets: 200 },
      storm: { listeners: 100, rate: 20, beforeMs: 1000, afterMs: 1000 },
    }
  : {
      fanout: { members: 500, steps: [50, 100, 200, 300, 400, 600, 800], seconds: 5, drainMs: 3000 },
      rooms: { rooms: 500, perRoom: 4, steps: [250, 500, 1000, 2000, 4000, 6000, 8000, 12000], seconds: 5, drainMs: 3000 },
      idle: { sockets: 5000 },
      storm: { listeners: 1000, rate: 50, beforeMs: 2000, afterMs: 2000 },
    };
const STEPS = argv.includes('--steps') ? argv[argv.indexOf('--steps') + 1].split(',').map(Number) : null;
if (STEPS) for (const name of ['fanout', 'rooms']) PLAN[name].steps = STEPS;
const SATURATION_P99_MS = 250;

const SERVERS = {
  chatter: {
    script: join(ROOT, 'dist/server.js'),
    ready: '/readyz',
    env: {
      SESSION_SECRET: 'bench-secret-that-is-at-least-32-characters',
      LOG_LEVEL: 'warn',
      // One machine plays thousands of users from one address.
      SESSIONS_PER_MINUTE: '1000000',
      MAX_SOCKETS_PER_IP: '1000000',
    },
  },
  peer: { script: join(ROOT, 'bench/peers/socketio-server.mjs'), ready: '/', env: {} },
};

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const PINNING = cpus().length >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const pinned = (core, command, args) => (PINNING ? ['taskset', ['-c', String(core), command, ...args]] : [command, args]);

/** CPU seconds used so far by a process (all its threads), from /proc: [user, system]. */
function cpuTimes(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [Number(fields[11]) / CLOCK_TICKS, Number(fields[12]) / CLOCK_TICKS]; // utime, stime
}
const cpuSeconds = (pid) => cpuTimes(pid).reduce((a, b) => a + b);

/** CPU seconds the hypervisor gave to others while this VM wanted them (steal, all cores). */
function stolenSeconds() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/);
  return Number(fields[8] ?? 0) / CLOCK_TICKS;
}

function rssBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const children = new Set();
function launch(core, command, args, options = {}) {
  const [file, list] = pinned(core, command, args);
  const child = spawn(file, list, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function waitForLine(child, text, what, limitMs = 20_000) {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`${what} not ready in ${limitMs} ms: ${seen.slice(-500)}`)), limitMs);
    const look = (chunk) => {
      seen += chunk;
      if (seen.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.setEncoding('utf8').on('data', look);
    child.stderr.setEncoding('utf8').on('data', look);
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code}: ${seen.slice(-500)}`)));
  });
}

async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'chatter-bench-redis-'));
  // As compose.yaml runs it: every acknowledged message is on disk first.
  const child = launch(0, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', process.env.BENCH_FSYNC ?? 'always']);
  await waitForLine(child, 'Ready to accept connections', 'redis-server');
  return { child, url: `redis://127.0.0.1:${port}`, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A replica; with `inspect`, its inspector listens on loopback so that its heap can be read. */
async function startReplica(kind, redisUrl, { inspect = false } = {}) {
  const port = await freePort();
  const server = SERVERS[kind];
  const profile = process.env.BENCH_PROFILE === 'servers' ? ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, 'bench/results')}`] : [];
  const inspectPort = inspect ? await freePort() : null;
  const inspector = inspect ? [`--inspect=127.0.0.1:${inspectPort}`] : [];
  const child = launch(0, process.execPath, [...profile, ...inspector, server.script], {
    env: { PATH: process.env.PATH, NODE_ENV: 'production', ...server.env, REDIS_URL: redisUrl, HOST: '127.0.0.1', PORT: String(port) },
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk) => (output += chunk));
  while (!(await fetch(url + server.ready).then((r) => r.ok, () => false))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${kind} replica did not become ready: ${output.slice(-500)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, url, inspectPort };
}

/**
 * The replica's live heap after a full garbage collection, through its inspector (the same for
 * either server, with no code of theirs involved). RSS keeps what the handshakes' garbage once
 * took, so this is what the sockets themselves hold.
 */
async function liveHeapBytes(replica) {
  const [target] = await (await fetch(`http://127.0.0.1:${replica.inspectPort}/json/list`)).json();
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  let nextId = 0;
  const call = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = ++nextId;
      const timer = setTimeout(() => reject(new Error(`inspector: ${method} took over 30 s`)), 30_000);
      const onMessage = (data) => {
        const reply = JSON.parse(data);
        if (reply.id !== id) return;
        clearTimeout(timer);
        socket.off('message', onMessage);
        if (reply.error) reject(new Error(`inspector: ${reply.error.message}`));
        else resolve(reply.result);
      };
      socket.on('message', onMessage);
      socket.send(JSON.stringify({ id, method, params }));
    });
  try {
    await call('HeapProfiler.collectGarbage');
    const { result } = await call('Runtime.evaluate', { expression: 'process.memoryUsage().heapUsed', returnByValue: true });
    return result.value;
  } finally {
    socket.close();
  }
}

function startLoadgen() {
  // BENCH_PROFILE=loadgen writes a CPU profile of the generator to bench/results/ (node --cpu-prof).
  const profile = process.env.BENCH_PROFILE === 'loadgen' ? ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, 'bench/results')}`] : [];
  const child = fork(join(ROOT, 'bench/loadgen.mjs'), [], {
    ...(PINNING ? { execPath: 'taskset', execArgv: ['-c', '1', process.execPath, ...profile] } : { execArgv: profile }),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  let nextId = 0;
  const pending = new Map();
  const ready = new Promise((resolve) => child.once('message', resolve));
  child.on('message', (message) => {
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (message.error) waiter.reject(new Error(message.error));
    else waiter.resolve(message.result);
  });
  child.once('exit', (code) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`load generator exited with ${code}`));
  });
  const call = (command, args = {}, limitMs = 180_000) =>
    new Promise((resolve, reject) => {
      const id = ++nextId;
      const timer = setTimeout(() => reject(new Error(`load generator: ${command} took over ${limitMs} ms`)), limitMs);
      pending.set(id, {
        resolve: (value) => (clearTimeout(timer), resolve(value)),
        reject: (err) => (clearTimeout(timer), reject(err)),
      });
      child.send({ id, command, args });
    });
  return { child, ready, call };
}

/** Runs `work` and reports the CPU the servers (replicas + Redis) and the generator used meanwhile. */
async function measured(system, work) {
  const serverPids = [system.redis.child.pid, ...system.replicas.map((r) => r.child.pid)];
  // (A process that dies mid-step makes cpuTimes throw; stepped() checks before each step.)
  const serverTimes = () => serverPids.map(cpuTimes).reduce(([u, s], [pu, ps]) => [u + pu, s + ps], [0, 0]);
  const [userBefore, systemBefore] = serverTimes();
  const redisBefore = cpuSeconds(system.redis.child.pid);
  const loadgenBefore = cpuSeconds(system.loadgen.child.pid);
  const stolenBefore = stolenSeconds();
  const started = performance.now();
  const result = await work();
  const wall = (performance.now() - started) / 1000;
  const [userAfter, systemAfter] = serverTimes();
  const redisCpu = cpuSeconds(system.redis.child.pid) - redisBefore;
  const serverCpu = userAfter - userBefore + (systemAfter - systemBefore);
  const loadgenCpu = cpuSeconds(system.loadgen.child.pid) - loadgenBefore;
  return {
    ...result,
    serverCpuPercent: (100 * serverCpu) / wall,
    serverSystemShare: serverCpu > 0 ? (systemAfter - systemBefore) / serverCpu : null,
    redisShare: serverCpu > 0 ? redisCpu / serverCpu : null,
    loadgenCpuPercent: (100 * loadgenCpu) / wall,
    serverCpuSeconds: serverCpu,
    // A noisy host shows here: a step with CPU stolen ran slower than the machine can.
    stolenPercent: (100 * (stolenSeconds() - stolenBefore)) / wall,
  };
}

const SCENARIOS = {
  async fanout(system, kind, plan) {
    const urls = system.replicas.map((r) => r.url);
    await system.loadgen.call('connect', { kind, urls, count: plan.members, roomsOf: '() => ["fanout"]', prefix: 'fan' });
    return stepped(system, kind, 'fan-out', plan);
  },

  async rooms(system, kind, plan) {
    const urls = system.replicas.map((r) => r.url);
    await system.loadgen.call('connect', { kind, urls, count: plan.rooms * plan.perRoom, roomsOf: `(i) => ["room" + Math.floor(i / ${plan.perRoom})]`, prefix: 'rooms' });
    return stepped(system, kind, 'many rooms', plan);
  },

  async idle(system, kind, plan) {
    const replica = system.replicas[0]; // fresh: started for this scenario
    await new Promise((r) => setTimeout(r, 1000));
    // RSS is read after each collection, so that it counts what the sockets hold, not the garbage
    // their handshakes left behind.
    const heapBefore = await liveHeapBytes(replica);
    const before = rssBytes(replica.child.pid);
    await system.loadgen.call('connect', { kind, urls: [replica.url], count: plan.sockets, roomsOf: '() => []', prefix: 'idle' });
    await new Promise((r) => setTimeout(r, 3000));
    const heapAfter = await liveHeapBytes(replica);
    const after = rssBytes(replica.child.pid);
    await system.loadgen.call('closeAll');
    const result = {
      sockets: plan.sockets,
      rssBefore: before,
      rssAfter: after,
      bytesPerSocket: (after - before) / plan.sockets,
      heapBytesPerSocket: (heapAfter - heapBefore) / plan.sockets,
    };
    log(`  ${kind} idle: ${plan.sockets} sockets, ${(result.bytesPerSocket / 1024).toFixed(1)} KiB RSS and ${(result.heapBytesPerSocket / 1024).toFixed(1)} KiB live heap each`);
    return result;
  },

  async storm(system, kind, plan) {
    const urls = system.replicas.map((r) => r.url);
    // Senders stay connected; enough of them that each stays within Chatter's 5 messages/s.
    const senders = Math.max(2, Math.ceil(plan.rate / 2));
    await system.loadgen.call('connect', { kind, urls, count: senders, roomsOf: '() => ["storm"]', prefix: 'stormsender' });
    await system.loadgen.call('connect', { kind, urls, count: plan.listeners, roomsOf: '() => ["storm"]', prefix: 'storm' });
    const result = await measured(system, () => system.loadgen.call('storm', { rate: plan.rate, beforeMs: plan.beforeMs, afterMs: plan.afterMs }));
    await system.loadgen.call('closeAll');
    log(`  ${kind} storm: ${result.rejoined}/${result.listeners} back in ${Math.round(result.allBackMs)} ms (half open in ${Math.round(result.openedP50Ms)}, half back in ${Math.round(result.backP50Ms)}, 90% in ${Math.round(result.backP90Ms)}), ${result.lost} deliveries lost of ${result.messages * result.listeners}, server ${Math.round(result.serverCpuPercent)}% CPU`);
    return result;
  },
};

/**
 * Runs the plan's rate steps in order. Past saturation the queues only grow, so the ladder stops
 * after a step that lost deliveries or took over a second at p99, or when a process died.
 */
async function stepped(system, kind, label, plan) {
  const steps = [];
  for (const rate of plan.steps) {
    if (!system.alive()) {
      steps.push({ rate, crashed: true });
      log(`  ${kind} ${label} ${rate} msg/s: a server process died`);
      break;
    }
    const step = await measured(system, () => system.loadgen.call('step', { rate, seconds: plan.seconds, drainMs: plan.drainMs }));
    steps.push({ rate, ...step, cpuMicrosPerDelivery: step.delivered ? (1e6 * step.serverCpuSeconds) / step.delivered : null });
    log(`  ${kind} ${label} ${rate} msg/s: ${Math.round(step.deliveriesPerSecond)} deliveries/s, p50 ${fmt(step.p50)} p99 ${fmt(step.p99)} ms, lost ${step.lost}${step.serverClosed ? ` (${step.serverClosed} sockets closed by the server)` : ''}, server ${Math.round(step.serverCpuPercent)}% CPU (${Math.round(100 * step.serverSystemShare)}% kernel, ${Math.round(100 * step.redisShare)}% Redis), ${fmt(steps.at(-1).cpuMicrosPerDelivery, 2)} µs/delivery${step.stolenPercent >= 1 ? `, ${Math.round(step.stolenPercent)}% stolen by the host` : ''}`);
    if (step.lost > 0 || step.p99 === null || step.p99 > 1000) break;
  }
  await system.loadgen.call('closeAll');
  return { steps, saturation: saturation(steps) };
}

/** The highest step delivered in full with p99 under the bound. */
function saturation(steps) {
  const full = steps.filter((s) => s.lost === 0 && s.duplicates === 0 && s.p99 !== null && s.p99 < SATURATION_P99_MS);
  return full.length === 0 ? null : Math.max(...full.map((s) => s.deliveriesPerSecond));
}

/** A fresh redis-server, 2 replicas and a load generator for one scenario. */
async function startSystem(kind, { inspect = false } = {}) {
  const redis = await startRedis();
  const replicas = [await startReplica(kind, redis.url, { inspect }), await startReplica(kind, redis.url)];
  const loadgen = startLoadgen();
  await loadgen.ready;
  const processes = [loadgen.child, ...replicas.map((r) => r.child), redis.child];
  return {
    redis,
    replicas,
    loadgen,
    alive: () => processes.every((child) => child.exitCode === null && child.signalCode === null),
    async stop() {
      // Politely, so that profiles get written: the generator exits when its IPC channel closes,
      // the replicas on SIGTERM. Anything still there after 10 s is killed.
      loadgen.child.disconnect();
      for (const replica of replicas) replica.child.kill('SIGTERM');
      const gone = Promise.all(processes.slice(0, -1).map((child) => (child.exitCode === null && child.signalCode === null ? new Promise((r) => child.once('exit', r)) : null)));
      await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);
      for (const child of processes) child.kill('SIGKILL');
      redis.cleanup();
    },
  };
}

async function runServer(kind) {
  const results = {};
  for (const [name, scenario] of Object.entries(SCENARIOS)) {
    if (ONLY && !ONLY.includes(name)) continue;
    // Only the idle scenario reads a heap; no other runs with an inspector.
    const system = await startSystem(kind, { inspect: name === 'idle' });
    try {
      results[name] = await scenario(system, kind, PLAN[name]);
    } finally {
      await system.stop();
    }
  }
  return results;
}

const pctOf = (share) => (share === null || share === undefined ? null : 100 * share);
const fmt = (value, digits = 1) => (value === null || value === undefined ? '-' : Number(value).toFixed(digits));
const log = (line) => process.stdout.write(`${line}\n`);

function table(results) {
  const rows = [];
  const row = (scenario, step, figure, chatter, peer, better = 'lower') => {
    const ratio = better !== 'none' && chatter && peer ? (better === 'lower' ? peer / chatter : chatter / peer) : null;
    rows.push([scenario, step, figure, fmt(chatter), fmt(peer), ratio === null ? '-' : `${ratio.toFixed(2)}x`]);
  };
  for (const name of ['fanout', 'rooms']) {
    const chatter = results.chatter[name];
    const peer = results.peer[name];
    if (!chatter || !peer) continue;
    const label = name === 'fanout' ? 'fan-out' : 'many rooms';
    const count = Math.max(chatter.steps.length, peer.steps.length);
    for (let i = 0; i < count; i++) {
      const c = chatter.steps[i] ?? { rate: peer.steps[i].rate };
      const p = peer.steps[i] ?? {};
      const step = `${c.rate} msg/s`;
      row(label, step, 'deliveries/s', c.deliveriesPerSecond, p.deliveriesPerSecond, 'higher');
      row(label, step, 'p50 ms', c.p50, p.p50);
      row(label, step, 'p99 ms', c.p99, p.p99);
      row(label, step, 'p99.9 ms', c.p999, p.p999);
      row(label, step, 'sends refused', c.refused, p.refused);
      row(label, step, 'lost', c.lost, p.lost);
      row(label, step, 'duplicated', c.duplicates, p.duplicates);
      row(label, step, 'sockets closed by server', c.serverClosed, p.serverClosed);
      row(label, step, 'server CPU µs/delivery', c.cpuMicrosPerDelivery, p.cpuMicrosPerDelivery);
      row(label, step, 'server CPU %', c.serverCpuPercent, p.serverCpuPercent);
      row(label, step, 'of which kernel %', pctOf(c.serverSystemShare), pctOf(p.serverSystemShare), 'none');
      row(label, step, 'of which Redis %', pctOf(c.redisShare), pctOf(p.redisShare), 'none');
      row(label, step, 'generator CPU %', c.loadgenCpuPercent, p.loadgenCpuPercent);
      row(label, step, 'CPU stolen by host %', c.stolenPercent, p.stolenPercent, 'none');
    }
    row(label, 'saturation', 'deliveries/s', chatter.saturation, peer.saturation, 'higher');
  }
  if (results.chatter.idle && results.peer.idle) {
    const [c, p] = [results.chatter.idle, results.peer.idle];
    row('idle', `${c.sockets} sockets`, 'RSS KiB/socket', c.bytesPerSocket / 1024, p.bytesPerSocket / 1024);
    row('idle', `${c.sockets} sockets`, 'live heap KiB/socket', c.heapBytesPerSocket / 1024, p.heapBytesPerSocket / 1024);
  }
  if (results.chatter.storm && results.peer.storm) {
    const c = results.chatter.storm;
    const p = results.peer.storm;
    row('storm', `${c.listeners} clients`, 'ms until half back', c.backP50Ms, p.backP50Ms);
    row('storm', `${c.listeners} clients`, 'ms until 90% back', c.backP90Ms, p.backP90Ms);
    row('storm', `${c.listeners} clients`, 'ms until all back', c.allBackMs, p.allBackMs);
    row('storm', `${c.listeners} clients`, 'deliveries lost', c.lost, p.lost);
  }
  const header = ['scenario', 'step', 'figure', 'chatter', 'peer', 'chatter vs peer'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i >= 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => (i >= 3 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`, ...rows.map(line)].join('\n');
}

async function main() {
  if (!existsSync(SERVERS.chatter.script)) {
    log('building dist/ first');
    if (spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' }).status !== 0) throw new Error('build failed');
  }
  const machine = { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, pinned: PINNING };
  log(`chatter bench${QUICK ? ' (quick)' : ''}: ${machine.cpus} × ${machine.model}, Node ${machine.node}, ${PINNING ? 'servers and Redis on core 0, generator on core 1' : 'not pinned'}`);
  const results = {};
  for (const kind of KINDS) {
    log(`${kind}:`);
    results[kind] = await runServer(kind);
  }
  log('');
  if (results.chatter && results.peer) log(table(results));
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify({ machine, quick: QUICK, plan: PLAN, results }, null, 2));
  log(`\nJSON: ${OUT}`);
}

const deadline = setTimeout(() => {
  log(`bench: over its ${RUN_LIMIT_MS / 1000} s limit, stopping`);
  for (const child of children) child.kill('SIGKILL');
  process.exit(1);
}, RUN_LIMIT_MS);
main()
  .then(() => clearTimeout(deadline))
  .catch((err) => {
    log(`bench failed: ${err.stack ?? err}`);
    for (const child of children) child.kill('SIGKILL');
    process.exit(1);
  });
