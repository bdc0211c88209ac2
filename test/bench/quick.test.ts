// `npm run bench -- --quick` keeps working: both servers run every scenario at small sizes. Only
// behaviour is asserted (it finishes, Chatter loses and doubles nothing); speed is the full
// benchmark's business, never a test's.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const RUN = fileURLToPath(new URL('../../bench/run.mjs', import.meta.url));

interface Step {
  rate: number;
  lost: number;
  duplicates: number;
  delivered: number;
}

test('the quick benchmark runs both servers through every scenario, and Chatter loses nothing', { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'chatter-bench-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'quick.json');
  const child = spawn(process.execPath, [RUN, '--quick', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, output);
  assert.match(output, /\| scenario +\| step +\| figure +\| +chatter +\| +peer +\| +chatter vs peer \|/, 'the table is printed');

  const { results } = JSON.parse(readFileSync(out, 'utf8'));
  for (const kind of ['chatter', 'peer']) {
    for (const scenario of ['fanout', 'rooms', 'idle', 'storm']) assert.ok(results[kind][scenario], `${kind} ran ${scenario}`);
  }
  for (const scenario of ['fanout', 'rooms']) {
    const steps = results.chatter[scenario].steps as Step[];
    assert.ok(steps.length > 0);
    for (const step of steps) {
      assert.ok(step.delivered > 0, `${scenario} ${step.rate}: something was delivered`);
      assert.equal(step.lost, 0, `${scenario} ${step.rate}: nothing lost`);
      assert.equal(step.duplicates, 0, `${scenario} ${step.rate}: nothing doubled`);
    }
  }
  assert.equal(results.chatter.storm.rejoined, results.chatter.storm.listeners, 'every client came back');
  assert.equal(results.chatter.storm.lost, 0, 'the storm lost nothing');
});
