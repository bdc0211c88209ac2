// Runs every *.test.ts under test/ with node:test (TypeScript through tsx). Node 20's runner does
// not expand globs, so the files are listed here. Arguments narrow the run: `node test/run.mjs browser`.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);
const files = readdirSync(join(root, 'test'), { recursive: true })
  .filter((file) => file.endsWith('.test.ts'))
  .map((file) => join('test', file))
  .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
  .sort();

if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}

const result = spawnSync(
  process.execPath,
  // Two cores: suites that start several processes must not all run at once.
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=300000', ...files],
  { cwd: root, stdio: 'inherit' },
);
console.log(`test files: ${files.map((f) => relative('test', f)).join(', ')}`);
process.exit(result.status ?? 1);
