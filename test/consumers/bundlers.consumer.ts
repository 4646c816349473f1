/**
 * The installed package in pages built the way apps build them, then run in
 * headless Chromium over real OPFS: a Vite production build with no options
 * and no config (npm's layout, and pnpm's strict one), and an esbuild
 * --minify bundle (esbuild does not follow `new URL(…, import.meta.url)`, so
 * its one documented line copies the worker and wasm beside the bundle). The
 * Vite's dev server is run too (it pre-bundles dependencies, which once broke
 * packages' relative `new URL()`s). webpack 5 runs with no config at all;
 * Rollup with the node-resolve plugin every Rollup app that imports npm
 * packages has, terser, and the same copy line as esbuild. The page (fixtures/web/main.js) creates, writes, backs up and verifies, and
 * requires `instanceof WrongKeyError` for a wrong password across the
 * worker boundary, in minified code.
 */
import { describe, it } from '../timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { bin, consumerProject, fixture, openPage, root, run, runPage } from './setup.ts';

const web = { 'index.html': fixture('web/index.html'), 'main.js': fixture('web/main.js') };
const vite = path.join(root, 'node_modules/vite/bin/vite.js');
/** Bundlers the repository does not use itself come into their consumer project. */
const webpack = { webpack: '^5.103.0', 'webpack-cli': '^6.0.1' };
const rollup = { rollup: '^4.52.0', '@rollup/plugin-node-resolve': '^16.0.3', '@rollup/plugin-terser': '^0.4.4' };

function checkPage(result: any) {
  assert.equal(result.error, undefined, result.error);
  assert.deepEqual(result.backup, { success: true, error: null });
  assert.equal(result.verify.ok, true, JSON.stringify(result.verify));
  assert.equal(result.listed, 1);
  assert.deepEqual(result.rows, [{ body: 'hello' }]);
  assert.deepEqual(result.wrongKey, { wrongKey: true, base: true, name: 'WrongKeyError', code: 'WRONG_KEY' });
  // The page-check pool found its script in this setup: more than one worker checked the large backup, none fell back.
  assert.ok(result.pool.success && result.pool.over8MiB, JSON.stringify(result.pool));
  assert.equal(result.pool.fallbacks, 0, JSON.stringify(result.pool));
  assert.ok(result.pool.cores < 2 || result.pool.workersUsed >= 2, JSON.stringify(result.pool));
}

function viteBuild(project: string): string[] {
  fs.rmSync(path.join(project, 'dist'), { recursive: true, force: true });
  const out = run('node', [vite, 'build', '--logLevel', 'info'], { cwd: project, timeout: 120_000, env: { ...process.env, NO_COLOR: '1' } });
  assert.doesNotMatch(out, /warn|doesn't exist at build time|will remain unchanged|error/i, out);
  const assets = fs.readdirSync(path.join(project, 'dist/assets'));
  assert.equal(assets.filter((f) => f.endsWith('.wasm')).length, 1, `one engine, emitted once: ${assets}`);
  assert.equal(assets.filter((f) => f.startsWith('worker') && f.endsWith('.js')).length, 1, `the worker emitted: ${assets}`);
  return assets;
}

describe('consumers: bundlers, run in Chromium', { timeout: 900_000 }, () => {
  it('Vite production build, no options and no config: backs up, verifies, instanceof WrongKeyError', { timeout: 240_000 }, async () => {
    const project = consumerProject('vite', { files: web });
    viteBuild(project);
    const { result, requests, console } = await runPage(path.join(project, 'dist'));
    checkPage(result);
    assert.ok(requests.some((r) => /\/assets\/mc-wa-sqlite-[\w-]+\.wasm$/.test(r)), `the worker fetched the emitted wasm: ${requests} ${console}`);
  });

  it('Vite dev server, no options and no config: the same page works', { timeout: 180_000 }, async () => {
    const project = consumerProject('vite', { files: web });
    fs.rmSync(path.join(project, 'node_modules/.vite'), { recursive: true, force: true });
    const server = spawn('node', [vite, '--host', '127.0.0.1', '--port', '5191'], { cwd: project, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`vite did not start:\n${log}`)), 60_000);
        const seen = (chunk: Buffer) => {
          log += chunk;
          const m = /Local:\s+(http:\/\/127\.0\.0\.1:\d+\/)/.exec(log);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        };
        server.stdout.on('data', seen);
        server.stderr.on('data', seen);
        server.once('exit', (code) => reject(new Error(`vite exited (${code}):\n${log}`)));
      });
      checkPage((await openPage(url)).result);
      assert.doesNotMatch(log, /error|does not exist|optimizeDeps\.exclude/i, log);
    } finally {
      server.kill();
    }
  });

  it('the same Vite build in a pnpm project (strict node_modules layout)', { timeout: 300_000 }, async () => {
    const project = consumerProject('vite-pnpm', { manager: 'pnpm', files: web });
    assert.ok(fs.existsSync(path.join(project, 'node_modules/.pnpm')), 'pnpm layout');
    assert.ok(!fs.existsSync(path.join(project, 'node_modules/comlink')), 'strict: dependencies of dependencies are not hoisted');
    viteBuild(project);
    checkPage((await runPage(path.join(project, 'dist'))).result);
  });

  it('esbuild --minify, plus its one line: copy dist/browser beside the bundle', { timeout: 240_000 }, async () => {
    const project = consumerProject('esbuild', { files: web });
    const out = path.join(project, 'out');
    fs.rmSync(out, { recursive: true, force: true });
    run(bin('esbuild'), ['main.js', '--bundle', '--minify', '--format=esm', '--outdir=out', '--log-level=warning'], { cwd: project, timeout: 60_000 });
    // The documented line (README, "Other bundlers"):
    fs.cpSync(path.join(project, 'node_modules/cipherkeep/dist/browser'), path.join(out, 'browser'), { recursive: true });
    fs.copyFileSync(path.join(project, 'index.html'), path.join(out, 'index.html'));
    const page = fs.readFileSync(path.join(out, 'main.js'), 'utf8');
    assert.doesNotMatch(page, /class WrongKeyError/, 'minified: class names are gone');
    const { result } = await runPage(out);
    checkPage(result);
    const kib = (f: string) => (gzipSync(fs.readFileSync(path.join(out, f))).length / 1024).toFixed(1);
    console.log(`# esbuild --minify payload, gzip: page ${kib('main.js')} KiB, worker ${kib('browser/worker.js')} KiB, wasm ${kib('browser/mc-wa-sqlite.wasm')} KiB`);
  });
  it('webpack 5, production mode, no config file: the worker and wasm are emitted and found', { timeout: 240_000 }, async () => {
    // webpack's defaults: src/index.js in, dist/main.js out.
    const project = consumerProject('webpack', { extra: webpack, files: { 'src/index.js': web['main.js'] } });
    const out = path.join(project, 'dist');
    fs.rmSync(out, { recursive: true, force: true });
    const log = run('node', ['node_modules/webpack-cli/bin/cli.js', '--mode', 'production', '--no-color'], { cwd: project, timeout: 120_000 });
    // webpack's only warnings are its advice on asset size (the 1.2 MiB engine).
    assert.doesNotMatch(log.replace(/WARNING in (asset|entrypoint) size limit[\s\S]*?(?=\n\n|$)/g, '').replace(/WARNING in webpack performance recommendations[\s\S]*?(?=\n\n|$)/g, ''), /WARNING|ERROR/, log);
    fs.writeFileSync(path.join(out, 'index.html'), web['index.html']);
    const emitted = fs.readdirSync(out);
    assert.equal(emitted.filter((f) => f.endsWith('.wasm')).length, 1, `the engine emitted once: ${emitted}`);
    const { result, requests } = await runPage(out);
    checkPage(result);
    assert.ok(requests.some((r) => /\/[0-9a-f]+\.wasm$/.test(r)), `the worker fetched webpack's emitted wasm: ${requests}`);
  });

  it('Rollup with node-resolve and terser, plus the copy line', { timeout: 240_000 }, async () => {
    const project = consumerProject('rollup', { extra: rollup, files: web });
    const out = path.join(project, 'out');
    fs.rmSync(out, { recursive: true, force: true });
    run('node', ['node_modules/rollup/dist/bin/rollup', 'main.js', '-p', '@rollup/plugin-node-resolve={browser:true}', '-p', '@rollup/plugin-terser', '-f', 'es', '-d', 'out', '--silent'], { cwd: project, timeout: 120_000 });
    // The documented line (README, "Other bundlers"), as for esbuild:
    fs.cpSync(path.join(project, 'node_modules/cipherkeep/dist/browser'), path.join(out, 'browser'), { recursive: true });
    fs.copyFileSync(path.join(project, 'index.html'), path.join(out, 'index.html'));
    assert.doesNotMatch(fs.readFileSync(path.join(out, 'main.js'), 'utf8'), /class WrongKeyError/, 'minified');
    checkPage((await runPage(out)).result);
  });
});
