// The Docker image, replayed without Docker: the Dockerfile's build stage runs on a copy of exactly
// the files it COPYs, its runtime stage's files go into an empty folder, and the server runs there
// as the image's CMD, ENV and HEALTHCHECK say, with no node_modules anywhere it could reach.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { lastOf, readDockerfile, stageEnv, type Stage } from '../helpers/dockerfile';
import { signIn, startServer } from '../helpers/process';
import { TestClient } from '../helpers/ws';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const [buildStage, runtimeStage] = readDockerfile(join(REPO, 'Dockerfile')) as [Stage, Stage];

/** Replays one stage's WORKDIR, COPY and RUN under `root`, which stands for the image's `/`. */
function replay(stage: Stage, root: string, stages: Record<string, Stage>): string {
  let workdir = '/';
  const inRoot = (path: string) => join(root, resolve(workdir, path));
  for (const { op, flags, words } of stage.instructions) {
    if (op === 'WORKDIR') {
      workdir = resolve(workdir, words[0]!);
      mkdirSync(inRoot('.'), { recursive: true });
    } else if (op === 'COPY') {
      const sources = words.slice(0, -1);
      const destination = words.at(-1)!;
      for (const source of sources) {
        // --from=<stage>: a path in that stage's filesystem, which lives under the same root.
        const from = flags.from ? join(root, source) : join(REPO, source);
        assert.ok(flags.from === undefined || flags.from in stages, `COPY --from=${flags.from} names a stage`);
        assert.ok(existsSync(from), `COPY source ${source} exists`);
        // Docker's rules: a directory's contents go to the destination; a file goes into a destination ending in /.
        const intoFolder = destination.endsWith('/') && !statSync(from).isDirectory();
        cpSync(from, intoFolder ? join(inRoot(destination), basename(source)) : inRoot(destination), { recursive: true });
      }
    } else if (op === 'RUN') {
      const command = words.join(' ');
      if (command.startsWith('npm ci')) {
        // The same lockfile that `npm ci` installed for this test run: link it rather than download again.
        symlinkSync(join(REPO, 'node_modules'), inRoot('node_modules'), 'dir');
      } else {
        const run = spawnSync('sh', ['-c', command], { cwd: inRoot('.'), encoding: 'utf8', timeout: 120_000 });
        assert.equal(run.status, 0, `RUN ${command}: ${run.stderr}`);
      }
    }
  }
  return inRoot('.');
}

test('the Dockerfile is multi-stage, slim, non-root, with a healthcheck and a graceful stop signal', () => {
  assert.match(buildStage.base, /^node:20-[a-z]+-slim$/);
  assert.equal(runtimeStage.base, buildStage.base, 'the same Node in both stages');
  assert.equal(buildStage.name, 'build');
  const runs = buildStage.instructions.filter((i) => i.op === 'RUN').map((i) => i.words.join(' '));
  assert.deepEqual(runs.map((r) => r.split(' ').slice(0, 3).join(' ')), ['npm ci --no-fund', 'npm run build']);
  assert.equal(runtimeStage.instructions.filter((i) => i.op === 'RUN').length, 0, 'nothing installed at run time');
  assert.equal(lastOf(runtimeStage, 'USER')?.words[0], 'node');
  assert.deepEqual(lastOf(runtimeStage, 'EXPOSE')?.words, ['3000']);
  assert.deepEqual(lastOf(runtimeStage, 'STOPSIGNAL')?.words, ['SIGTERM']);
  assert.deepEqual(lastOf(runtimeStage, 'CMD')?.words, ['node', 'dist/server.js']);
  assert.equal(stageEnv(runtimeStage).NODE_ENV, 'production');
  const copies = runtimeStage.instructions.filter((i) => i.op === 'COPY');
  assert.deepEqual(copies.map((c) => [c.flags.from, ...c.words]), [['build', '/src/dist', './dist']], 'only dist/');

  const ignored = readFileSync(join(REPO, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const entry of ['node_modules', 'dist', '.git', '.env']) assert.ok(ignored.includes(entry), `.dockerignore has ${entry}`);
  for (const copy of buildStage.instructions.filter((i) => i.op === 'COPY')) {
    for (const source of copy.words.slice(0, -1)) assert.ok(!ignored.includes(source), `${source} is not ignored`);
  }
});

test('the image replayed: built from its own COPYs, run from dist/ alone, it serves the page, sessions and chat', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'chatter-image-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  replay(buildStage, root, {});
  const app = replay(runtimeStage, root, { build: buildStage });
  rmSync(join(root, 'src'), { recursive: true }); // the build stage is not in the final image

  for (let dir = app; dir !== dirname(dir); dir = dirname(dir)) {
    assert.ok(!existsSync(join(dir, 'node_modules')), `no node_modules reachable from ${dir}`);
  }
  const cmd = lastOf(runtimeStage, 'CMD')!.words;
  const server = await startServer({ script: join(app, cmd[1]!), cwd: app, env: { ...stageEnv(runtimeStage), SESSION_SECRET: '' } });
  t.after(() => server.stop('SIGKILL'));

  // HEALTHCHECK exactly as Docker runs it, in the container's environment.
  const healthcheck = lastOf(runtimeStage, 'HEALTHCHECK')!;
  const check = () =>
    spawnSync(process.execPath, healthcheck.words.slice(1), {
      env: { PATH: process.env.PATH, PORT: new URL(server.url).port },
      timeout: 5000,
    }).status;
  assert.equal(healthcheck.words[0], 'node');
  assert.equal(check(), 0);

  const page = await fetch(server.url);
  assert.equal(page.status, 200);
  const html = await page.text();
  const script = /<script[^>]+src="([^"]+)"/.exec(html)?.[1];
  assert.ok(script, 'the page loads its bundle');
  const asset = await fetch(new URL(script, server.url), { headers: { 'accept-encoding': 'br' } });
  assert.equal(asset.status, 200);
  assert.match(asset.headers.get('cache-control') ?? '', /immutable/);

  const { token } = await signIn(server.url, 'alice');
  const alice = await TestClient.connect(server.wsUrl, token);
  await alice.join('general');
  const ack = await alice.say('general', 'hello from the image', 'c1');
  assert.equal((await alice.seen((f) => f.type === 'message' && f.id === ack.id)).text, 'hello from the image');
  alice.close();

  await server.stop('SIGTERM');
  assert.equal(await server.exited, 0);
  assert.equal(check(), 1, 'the healthcheck fails once the server is gone');
});
