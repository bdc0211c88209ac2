// Fuzzing the frame parser and the live socket with hostile input from a seeded generator. A
// failure prints the seed; FUZZ_SEED=<seed> node test/run.mjs fuzz replays it.
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { test } from 'node:test';
import { LIMITS, parseClientFrame } from '../../src/server/chat/protocol';
import { build } from '../helpers/app';
import { heapAfterGc } from '../helpers/heap';
import { TestClient } from '../helpers/ws';

const SEED = Number(process.env.FUZZ_SEED ?? 0xc0ffee);
const ERROR_CODES = ['bad_request', 'invalid_room', 'not_joined', 'too_long', 'limit_exceeded', 'rate_limited', 'unavailable'];
const SERVER_TYPES = ['welcome', 'joined', 'message', 'ack', 'history', 'presence', 'typing', 'left', 'error'];

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  return { next, int, pick };
}
type Random = ReturnType<typeof random>;

const NASTY_STRINGS = [
  '', ' ', '\u0000', '\uD800', '\uDFFF', 'a\uD83D', '\u202E', '\u200B', '😀'.repeat(5000), 'x'.repeat(70),
  '__proto__', 'constructor', 'prototype', 'toString', '../../etc/passwd', '<script>alert(1)</script>',
  'general', 'GENERAL', 'gen eral', '-general', 'a'.repeat(33), '1-0', '0-0', '99999999999999999999-1', '1-', '-1',
  '1e3', 'NaN', 'null', '{}', '[]', '%00', '\r\n', 'ok_id-1',
];

function jsonValue(r: Random, depth = 0): unknown {
  switch (r.int(depth > 4 ? 6 : 9)) {
    case 0: return null;
    case 1: return r.next() < 0.5;
    case 2: return r.pick([0, -1, 1.5, 1e308, -0, 2 ** 53 + 1, 51, 101, 50]);
    case 3: return r.pick(NASTY_STRINGS);
    case 4: return String.fromCharCode(...Array.from({ length: r.int(20) }, () => r.int(0x10000)));
    case 5: return r.pick(['join', 'leave', 'send', 'history', 'typing', 'welcome', 'ack']);
    case 6: return Array.from({ length: r.int(4) }, () => jsonValue(r, depth + 1));
    case 7: return Object.fromEntries(Array.from({ length: r.int(4) }, () => [r.pick([...NASTY_STRINGS, 'type', 'room']), jsonValue(r, depth + 1)]));
    default: return JSON.parse(`{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"type":"send"}`);
  }
}

/** A valid frame with one field swapped for something hostile, or a key added. */
function mutatedFrame(r: Random): Record<string, unknown> {
  const frame: Record<string, unknown> = r.pick([
    { type: 'join', room: 'fuzz' },
    { type: 'join', room: 'fuzz', since: '1-0' },
    { type: 'leave', room: 'elsewhere' },
    { type: 'send', room: 'fuzz', text: 'hello', clientId: 'c1' },
    { type: 'history', room: 'fuzz', before: '1-0', limit: 10 },
    { type: 'typing', room: 'fuzz' },
  ]);
  const key = r.pick([...Object.keys(frame), 'type', 'room', 'text', 'clientId', 'since', 'before', 'limit', '__proto__', 'constructor']);
  const value = jsonValue(r);
  if (key === '__proto__') return JSON.parse(JSON.stringify(frame).replace(/^\{/, `{"__proto__":${JSON.stringify(value) ?? 'null'},`));
  frame[key] = value;
  return frame;
}

function deeplyNested(r: Random): string {
  const depth = 1 + r.int(5000);
  const [open, close] = r.pick([['[', ']'], ['{"a":', '}']] as const);
  return open.repeat(depth) + '1' + close.repeat(depth);
}

function randomBytes(r: Random, length: number): Buffer {
  return Buffer.from(Array.from({ length }, () => r.int(256)));
}

/** One hostile text frame that fits in a frame (the ones that close the socket come apart). */
function hostileText(r: Random): string {
  for (;;) {
    const text = anyHostileText(r);
    if (Buffer.byteLength(text) <= LIMITS.maxFrameBytes) return text;
  }
}

function anyHostileText(r: Random): string {
  switch (r.int(5)) {
    case 0: {
      const bytes = randomBytes(r, r.int(200));
      return isUtf8(bytes) ? bytes.toString() : bytes.toString('latin1');
    }
    case 1: return JSON.stringify(jsonValue(r)) ?? 'undefined';
    case 2: return deeplyNested(r);
    case 3: return JSON.stringify(mutatedFrame(r));
    default: return JSON.stringify(mutatedFrame(r)).slice(0, r.int(60)); // cut mid-way
  }
}

test(`parseClientFrame never throws and answers every input with a frame or a named error (seed ${SEED})`, () => {
  const r = random(SEED);
  for (let i = 0; i < 20_000; i++) {
    const text = hostileText(r);
    let result;
    try {
      result = parseClientFrame(text, 2000);
    } catch (err) {
      assert.fail(`seed ${SEED}, input ${i} threw ${String(err)}: ${text.slice(0, 200)}`);
    }
    if (result.ok) {
      assert.match(result.frame.room, /^[a-z0-9][a-z0-9_-]{0,31}$/, `seed ${SEED}, input ${i}`);
      assert.equal(Object.getPrototypeOf(result.frame), Object.prototype);
    } else {
      assert.ok(ERROR_CODES.includes(result.code), `seed ${SEED}, input ${i}: ${result.code}`);
      assert.equal(typeof result.ref.type, 'string');
      assert.ok(result.ref.type.length <= 64 && (result.ref.room ?? '').length <= 64, 'refs stay short');
    }
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted');
});

test(`the live server answers hostile frames as the contract says and its heap returns to baseline (seed ${SEED})`, async (t) => {
  const server = await build(t);
  const r = random(SEED);
  const { token } = await server.signIn('fuzzer');

  const warm = await TestClient.connect(server.wsUrl, token);
  await warm.join('fuzz');
  warm.close();
  await warm.closed;
  const baseline = heapAfterGc();

  let frames = 0;
  for (let round = 0; round < 60; round++) {
    const client = await TestClient.connect(server.wsUrl, token);
    await client.join('fuzz');
    // Below the per-socket limits (100 frames, 50 refusals at once), so every answer is a real one.
    for (let i = 0; i < 40; i++, frames++) client.sendRaw(hostileText(r));
    const probe = `probe-${round}`;
    client.send({ type: 'leave', room: probe });
    await client.next((f) => f.type === 'left' && f.room === probe);
    for (const frame of client.frames) {
      assert.ok(SERVER_TYPES.includes(frame.type), `seed ${SEED}: unknown frame ${JSON.stringify(frame).slice(0, 200)}`);
      if (frame.type === 'error') {
        assert.ok(ERROR_CODES.includes(frame.code) && frame.code !== 'rate_limited', `seed ${SEED}: ${JSON.stringify(frame)}`);
        assert.equal(typeof frame.message, 'string');
        assert.equal(typeof frame.ref.type, 'string');
      }
    }
    assert.ok(client.frames.filter((f) => f.type === 'error').length > 0, 'hostile frames are answered');

    // Then one frame the contract closes the socket for.
    const [kind, expected] = r.pick([
      ['binary', 1003],
      ['16 KiB + 1', 1009],
      ['invalid UTF-8', 1007],
    ] as const);
    if (kind === 'binary') client.sendRaw(randomBytes(r, 1 + r.int(100)), { binary: true });
    else if (kind === '16 KiB + 1') client.sendRaw(JSON.stringify({ type: 'send', room: 'fuzz', clientId: 'big', text: 'x'.repeat(LIMITS.maxFrameBytes) }).slice(0, LIMITS.maxFrameBytes + 1));
    else client.sendRaw(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    assert.equal((await client.closed).code, expected, `seed ${SEED}, round ${round}: ${kind}`);
    frames++;
  }

  assert.equal((await fetch(`${server.url}/healthz`)).status, 200, 'still serving');
  await waitFor(() => server.app.chat.gateway.connections.size === 0);
  const grown = heapAfterGc() - baseline;
  t.diagnostic(`${frames} hostile frames; heap ${(grown / 1024 / 1024).toFixed(2)} MiB above baseline after GC`);
  assert.ok(grown < 8 * 1024 * 1024, `heap grew by ${grown} bytes (seed ${SEED})`);
});

async function waitFor(condition: () => boolean, waitMs = 5000): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
