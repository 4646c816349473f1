/**
 * Size budgets for what ships and what browsers download, measured on the
 * build (dist/): the page's entry stays a thin Comlink client, the prebuilt
 * worker's JavaScript stays small beside its engine, the engine is the pinned
 * one, and the tarball carries the library and nothing else (no tests,
 * benches, CI or config). A dependency that drags in a large library fails
 * here first. The figures are in README.md ("Size").
 */
import { before } from 'node:test';
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
const kib = (bytes: Uint8Array) => gzipSync(bytes).length / 1024;

before(() => {
  // `npm test` builds first; run on its own from a fresh clone, build here.
  if (!fs.existsSync(path.join(root, 'dist/browser/worker.js'))) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'pipe', timeout: 120_000 });
});

describe('bundle size (minified, gzipped)', () => {
  // The whole entry includes the optional off-site pieces (the backup folder, the schedule, idb-keyval:
  // 1.3 KiB), which only the page can hold (the picker and permission prompts need it); an app that does
  // not import them does not ship them (the entry has no side effects), measured by the next test.
  it('the page entry, cipherkeep/browser bundled and minified whole, is under 6 KiB', { timeout: 60_000 }, async () => {
    const out = await build({ entryPoints: [path.join(root, 'dist/browser.js')], bundle: true, minify: true, format: 'esm', target: 'es2022', write: false, logLevel: 'silent' });
    const size = kib(out.outputFiles[0]!.contents);
    assert.ok(size < 6, `${size.toFixed(1)} KiB`);
  });

  it('a page using the client, downloads, a backup folder and the schedule bundles under 5.5 KiB; the client alone under 4', { timeout: 60_000 }, async () => {
    const app = async (names: string) => kib((await build({
      stdin: { contents: `import { ${names} } from './dist/browser.js'; console.log(${names});`, resolveDir: root },
      bundle: true, minify: true, format: 'esm', target: 'es2022', write: false, logLevel: 'silent',
    })).outputFiles[0]!.contents);
    const all = await app('openCipherkeep, downloadBackup, backupFolder, browserSchedule');
    const client = await app('openCipherkeep');
    assert.ok(all < 5.5, `${all.toFixed(1)} KiB`);
    assert.ok(client < 4, `client alone: ${client.toFixed(1)} KiB (the off-site pieces must tree-shake away)`);
  });

  // 70 KiB until the worker carried off-site targets (the S3 client, ~9.5 KiB) and incremental backups (the page store, ~14 KiB): 90.3 KiB then.
  // 100 KiB until the page store's speed-ups and review fixes (98.4 KiB before them, 99.5 after; Deno's gzip gives ~1 KiB more).
  it('the shipped worker, dist/browser/worker.js, is under 105 KiB of JavaScript', () => {
    const size = kib(fs.readFileSync(path.join(root, 'dist/browser/worker.js')));
    assert.ok(size < 105, `${size.toFixed(1)} KiB`);
  });

  it('the shipped engine, dist/browser/mc-wa-sqlite.wasm, is under 600 KiB', () => {
    const size = kib(fs.readFileSync(path.join(root, 'dist/browser/mc-wa-sqlite.wasm')));
    assert.ok(size < 600, `${size.toFixed(1)} KiB`);
  });
});

describe('the tarball', () => {
  // 1 MB until off-site targets and incremental backups reached the service, the worker and the command line (1.10 MB
  // then; the engine is 575 kB of it); 1.2 MB until the page store's speed-ups and the host page MAC (1.207 MB then).
  it('is under 1.25 MB and holds the build, its sources, the command, README and LICENSE only', { timeout: 120_000 }, () => {
    const [pack] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', stdio: 'pipe', timeout: 110_000 }));
    assert.ok(pack.size < 1_250_000, `${pack.size} bytes`);
    const files: string[] = pack.files.map((f: { path: string }) => f.path);
    const stray = files.filter((f) => !/^(dist\/|src\/|bin\/cipherkeep\.mjs$|README\.md$|LICENSE$|package\.json$)/.test(f));
    assert.deepEqual(stray, []);
    assert.ok(!files.some((f) => /(^|\/)(test|bench|examples|\.ci)\/|tsconfig|playwright|\.test\.|\.spec\./.test(f)), 'no tests, benches, CI or config');
    for (const f of ['dist/node.js', 'dist/node.d.ts', 'dist/browser/worker.js', 'dist/browser/mc-wa-sqlite.wasm', 'LICENSE']) assert.ok(files.includes(f), f);
  });
});
