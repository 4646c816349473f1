/**
 * node --import tsx bench/page-check-browser.ts [-- --mb 64 --reps 3 --out dir]
 *
 * Which HMAC the browser's page checks should use: in headless Chromium, per
 * Web Worker, hash-wasm's HMAC-SHA512 over each 4 KiB page (as page-check.ts
 * does) against WebCrypto's crypto.subtle.sign('HMAC'), one call per page
 * batched with Promise.all over a 4 MiB chunk (each page's covered bytes and
 * page number copied into one buffer, as sign() takes one). One worker, then
 * one per core at once. Random bytes in memory: the hashing alone, no reads.
 *
 * Then the whole of it: createBackup of the bench's notes database (--size MB,
 * default 100) in Chromium over OPFS (on-disk profile), with the page-check
 * pool (src/worker/page-check-pool.ts) and without it (pageCheckWorkers: 1),
 * alternating in one run so both see the same machine. Peak memory growth of
 * all of Chromium's processes as bench/run.ts measures it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { execFileSync, spawn } from 'node:child_process';
import { chromium } from '@playwright/test';
import { DATA_DIR, PASSWORD, workload } from './workloads.ts';
import { browserRssMB } from './browser-memory.ts';

const { values } = parseArgs({ options: { size: { type: 'string', default: '100' }, mb: { type: 'string', default: '64' }, reps: { type: 'string', default: '3' }, out: { type: 'string' } } });
const mb = Number(values.mb);
const reps = Number(values.reps);
const here = import.meta.dirname;
const results = path.resolve(values.out ?? path.join(here, 'results'));

const workerSource = `
import { createHMAC, createSHA512 } from 'hash-wasm';
const PAGE = 4096, COVERED = PAGE - 64, CHUNK = 4 << 20;
self.onmessage = async ({ data: { mb, method } }) => {
  const buf = new Uint8Array(mb << 20);
  for (let i = 0; i < buf.length; i += 65536) crypto.getRandomValues(buf.subarray(i, i + 65536));
  const key = crypto.getRandomValues(new Uint8Array(32));
  const pages = buf.length / PAGE;
  const t0 = performance.now();
  let sink = 0;
  if (method === 'hash-wasm') {
    const h = await createHMAC(createSHA512(), key);
    const pgno = new Uint8Array(4), view = new DataView(pgno.buffer);
    for (let p = 0; p < pages; p++) {
      view.setUint32(0, p + 1, true);
      h.init(); h.update(buf.subarray(p * PAGE, p * PAGE + COVERED)); h.update(pgno);
      sink ^= h.digest('binary')[0];
    }
  } else {
    const k = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-512' }, false, ['sign']);
    for (let first = 0; first < pages; first += CHUNK / PAGE) {
      const batch = [];
      for (let p = first; p < Math.min(pages, first + CHUNK / PAGE); p++) {
        const data = new Uint8Array(COVERED + 4);
        data.set(buf.subarray(p * PAGE, p * PAGE + COVERED));
        new DataView(data.buffer).setUint32(COVERED, p + 1, true);
        batch.push(crypto.subtle.sign('HMAC', k, data));
      }
      for (const mac of await Promise.all(batch)) sink ^= new Uint8Array(mac)[0];
    }
  }
  self.postMessage({ ms: performance.now() - t0, sink });
};`;
const bundle = await build({ stdin: { contents: workerSource, resolveDir: here, loader: 'js' }, bundle: true, format: 'esm', write: false, platform: 'browser' });
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
try {
  const page = await browser.newPage();
  // localhost is a secure context (crypto.subtle); nothing is served over the network.
  await page.route('http://localhost:9/**', (route) => route.request().url().endsWith('/w.js')
    ? route.fulfill({ contentType: 'text/javascript', body: bundle.outputFiles[0]!.text })
    : route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>bench</title>' }));
  await page.goto('http://localhost:9/');
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const run = (method: string, workers: number) => page.evaluate(async ({ mb, method, workers }) => {
    // No named inner functions: the page gets this code as text, without tsx's helpers.
    return Math.max(...(await Promise.all(Array.from({ length: workers }, () => new Promise<number>((resolve, reject) => {
      const w = new Worker('/w.js', { type: 'module' });
      w.onerror = (e) => reject(new Error(e.message));
      w.onmessage = ({ data }) => { w.terminate(); resolve(data.ms); };
      w.postMessage({ mb, method });
    })))));
  }, { mb, method, workers });
  const rows: string[] = [];
  const lines: string[] = [];
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const workers of [1, cores]) {
    for (const method of ['hash-wasm', 'webcrypto']) {
      const ms: number[] = [];
      for (let r = 0; r < reps; r++) ms.push(await run(method, workers));
      const m = median(ms);
      rows.push(`| ${method} | ${workers} | ${m.toFixed(0)} ms | ${((mb * workers) / (m / 1000)).toFixed(0)} MB/s | ${(mb / (m / 1000)).toFixed(0)} MB/s |`);
      console.log(rows.at(-1));
    }
  }
  lines.push(
    `page HMAC-SHA512 in Chromium ${browser.version()} Web Workers — ${new Date().toISOString()} — ${mb} MB of 4 KiB pages per worker, median of ${reps}, ${os.cpus().length} cores`,
    '',
    '| HMAC | workers at once | time | total MB/s | MB/s per worker |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '',
    ...(await backups()),
  );
  fs.mkdirSync(results, { recursive: true });
  fs.writeFileSync(path.join(results, 'page-check-browser.txt'), `${lines.join('\n')}\n`);
  console.log(`\n${lines.join('\n')}`);
} finally {
  await browser.close();
}

/** createBackup with and without the pool, alternating: a table in the shape of results/page-check-cores.txt. */
async function backups(): Promise<string[]> {
  const sizeMB = Number(values.size);
  const file = workload(sizeMB, 'delete');
  const port = 4197;
  const server = spawn('node', ['--import', 'tsx', path.join(here, '../test/browser/serve.ts')], {
    env: { ...process.env, PORT: String(port), BENCH_DATA_DIR: DATA_DIR }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const userDataDir = path.join(DATA_DIR, `chromium-profile-pool-${process.pid}`);
  await new Promise<void>((resolve) => server.stdout.on('data', (d) => String(d).includes('serving') && resolve()));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const runs = new Map<number, Array<{ verifyMs: number; totalMs: number; growthMB: number; workersUsed: number }>>([[0, []], [1, []]]);
  try {
    const page0 = await context.newPage();
    await page0.goto(`http://127.0.0.1:${port}/harness/`);
    await page0.evaluate(async (name) => {
      const writable = await (await (await navigator.storage.getDirectory()).getFileHandle('bench.db', { create: true })).createWritable();
      await (await fetch(`/bench-data/${name}`)).body!.pipeTo(writable);
    }, path.basename(file));
    await page0.close();
    // One page (one cipherkeep worker) per setting, each warmed by one unmeasured backup: the pool is measured as it runs once started.
    const pages = [];
    for (const workers of [0, 1]) {
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${port}/harness/`);
      await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
      // 0: the default pool; 1: the worker's own thread.
      await page.evaluate(({ password, workers }) => window.harness.open({ databasePath: '/bench.db', backupDir: '/backups', password, create: false, ...(workers ? { pageCheckWorkers: 1 } : {}) }).then(() => {}), { password: PASSWORD, workers });
      pages.push({ page, workers });
    }
    for (let r = -1; r < reps; r++) {
      for (const { page, workers } of pages) {
        execFileSync('sync');
        await new Promise((res) => setTimeout(res, 300));
        const before = browserRssMB();
        let peak = before;
        const sampler = setInterval(() => (peak = Math.max(peak, browserRssMB())), 20);
        const run = await page.evaluate(async () => {
          const keep = window.harness.keep!;
          let verifyAt = 0;
          const start = performance.now();
          const b = await keep.createBackup({ force: true }, (p) => void (p.phase === 'verify' && !verifyAt && (verifyAt = performance.now())));
          const end = performance.now();
          if (!b.success) throw new Error(b.error);
          const stats = await keep.pageCheckStats();
          await (await (await navigator.storage.getDirectory()).getDirectoryHandle('backups')).removeEntry(b.backupPath!.split('/').pop()!);
          return { verifyMs: end - verifyAt, totalMs: end - start, workersUsed: stats?.workersUsed ?? 0, startMs: stats?.startMs ?? 0 };
        }).finally(() => clearInterval(sampler));
        const measuredRun = { ...run, growthMB: Math.max(peak, browserRssMB()) - before };
        console.log(`${r < 0 ? 'warm-up ' : ''}${workers ? 'in-thread' : 'pool'}: ${JSON.stringify(measuredRun)}`);
        if (r >= 0) runs.get(workers)!.push(measuredRun);
      }
    }
  } finally {
    await context.close();
    server.kill();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const spread = (xs: number[]) => Math.max(...xs) - Math.min(...xs);
  const row = (label: string, xs: Array<{ verifyMs: number; totalMs: number; growthMB: number; workersUsed: number }>) =>
    `| ${label} | ${xs[0]!.workersUsed || 1} | ${median(xs.map((x) => x.verifyMs)).toFixed(0)}±${spread(xs.map((x) => x.verifyMs)).toFixed(0)} ms | ${median(xs.map((x) => x.totalMs)).toFixed(0)}±${spread(xs.map((x) => x.totalMs)).toFixed(0)} ms | +${median(xs.map((x) => x.growthMB)).toFixed(1)} MB |`;
  return [
    `createBackup in Chromium ${context.browser()?.version() ?? ''} over OPFS (on-disk profile) — ${new Date().toISOString()} — ${sizeMB} MB notes database, median±spread of ${reps}, alternating, ${os.cpus().length} cores`,
    '',
    '| page checks | threads checking | verify | total | peak RSS growth |',
    '| --- | --- | --- | --- | --- |',
    row('page-check pool (default)', runs.get(0)!),
    row('in the worker\'s thread (pageCheckWorkers: 1)', runs.get(1)!),
  ];
}
