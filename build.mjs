// Builds the deployable artifact into dist/:
//   dist/server.js  the server, one ESM bundle that needs no node_modules at run time
//   dist/public/    the Preact client: index.html plus content-hashed, minified, precompressed assets
// `node build.mjs --if-needed` skips the build when dist/ is newer than every source file.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const root = new URL('.', import.meta.url).pathname;
const dist = join(root, 'dist');
const publicOut = join(dist, 'public');
const SOURCES = ['src', 'public', 'build.mjs', 'package-lock.json'];

async function newestMtime(path) {
  const info = await stat(path).catch(() => null);
  if (!info) return 0;
  if (!info.isDirectory()) return info.mtimeMs;
  const entries = await readdir(path);
  const times = await Promise.all(entries.map((entry) => newestMtime(join(path, entry))));
  return Math.max(info.mtimeMs, ...times);
}

async function isUpToDate() {
  const built = await Promise.all([join(dist, 'server.js'), join(publicOut, 'index.html')].map((f) => stat(f).catch(() => null)));
  if (built.some((info) => info === null)) return false;
  const oldestOutput = Math.min(...built.map((info) => info.mtimeMs));
  const sources = await Promise.all(SOURCES.map((s) => newestMtime(join(root, s))));
  return Math.max(...sources) < oldestOutput;
}

async function buildClient() {
  const result = await build({
    entryPoints: { main: join(root, 'src/client/main.tsx') },
    outdir: join(publicOut, 'assets'),
    entryNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    bundle: true,
    minify: true,
    sourcemap: 'linked',
    format: 'esm',
    target: ['es2022', 'chrome111', 'firefox115', 'safari16.4'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    metafile: true,
    legalComments: 'linked',
    logLevel: 'warning',
  });

  const outputs = Object.keys(result.metafile.outputs).map((file) => '/' + relative(publicOut, join(root, file)));
  const script = outputs.find((file) => file.endsWith('.js'));
  const style = outputs.find((file) => file.endsWith('.css'));
  if (!script || !style) throw new Error('client build produced no script or stylesheet');

  await cp(join(root, 'public'), publicOut, { recursive: true });
  const template = await readFile(join(root, 'public/index.html'), 'utf8');
  await writeFile(
    join(publicOut, 'index.html'),
    template.replace('%SCRIPT%', script).replace('%STYLE%', style),
  );
  return { script, style };
}

/** .br and .gz beside every compressible file, so the server never compresses at request time. */
async function precompress(dir) {
  const sizes = new Map();
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !/\.(js|css|html|svg|map|json|txt)$/.test(entry.name)) continue;
    const path = join(entry.parentPath ?? entry.path, entry.name);
    const content = await readFile(path);
    const gz = gzipSync(content, { level: 9 });
    const br = brotliCompressSync(content, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } });
    await writeFile(`${path}.gz`, gz);
    await writeFile(`${path}.br`, br);
    sizes.set('/' + relative(dir, path), { raw: content.length, gzip: gz.length });
  }
  return sizes;
}

async function buildServer() {
  await build({
    entryPoints: [join(root, 'src/server/main.ts')],
    outfile: join(dist, 'server.js'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    sourcemap: 'linked',
    // CommonJS dependencies (fastify, pino, …) call require(); give the ESM bundle one.
    banner: { js: "import { createRequire as __chatterRequire } from 'node:module'; const require = __chatterRequire(import.meta.url);" },
    // ws loads these native speed-ups only if installed; without them it uses its JS fallbacks.
    external: ['bufferutil', 'utf-8-validate'],
    legalComments: 'linked',
    logLevel: 'warning',
  });
  // dist/ can be copied anywhere and run without the repository's package.json.
  await writeFile(join(dist, 'package.json'), JSON.stringify({ type: 'module', private: true }) + '\n');
}

const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;

async function main() {
  if (process.argv.includes('--if-needed') && (await isUpToDate())) {
    console.log('build: dist/ is up to date');
    return;
  }
  const started = Date.now();
  await rm(dist, { recursive: true, force: true });
  await mkdir(publicOut, { recursive: true });
  const [{ script, style }] = await Promise.all([buildClient(), buildServer()]);
  const sizes = await precompress(publicOut);
  const server = await stat(join(dist, 'server.js'));
  const digest = createHash('sha256').update(await readFile(join(dist, 'server.js'))).digest('hex').slice(0, 12);
  console.log(
    `build: client ${script} ${kb(sizes.get(script).gzip)} gzipped, ${style} ${kb(sizes.get(style).gzip)} gzipped; ` +
      `server dist/server.js ${kb(server.size)} (${digest}); ${Date.now() - started} ms`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
