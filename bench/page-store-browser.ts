/**
 * node --import tsx bench/page-store-browser.ts [-- --size 500 --days 5 --name page-store-browser --out dir]
 *
 * Incremental backups in Chromium (on-disk profile, OPFS), through the worker
 * as a page uses them: the database (the bench's notes workload) is loaded
 * into OPFS; a first (full) generation, then `days` generations each after
 * about 1% of the pages were rewritten in the worker; then the service's
 * restoreGeneration of the newest (assemble and check every page, verify
 * fully with quick_check, keep the replaced database, swap in) and, for
 * comparison, a full createBackup. Peak memory growth of all of Chromium's
 * processes is sampled every 20 ms, as bench/run.ts does.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { chromium } from '@playwright/test';
import { DATA_DIR, PASSWORD, workload } from './workloads.ts';
import { browserRssMB } from './browser-memory.ts';

const { values } = parseArgs({
  options: { size: { type: 'string', default: '500' }, days: { type: 'string', default: '5' }, name: { type: 'string', default: 'page-store-browser' }, out: { type: 'string' } },
});
const sizeMB = Number(values.size);
const days = Number(values.days);
const here = import.meta.dirname;
const results = path.resolve(values.out ?? path.join(here, 'results'));
const port = 4198;

/** Runs `fn` while sampling memory: its result, its time, and the peak growth. */
async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; peakGrowthMB: number }> {
  execFileSync('sync');
  await new Promise((r) => setTimeout(r, 300)); // let the last step's garbage go
  const before = browserRssMB();
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, browserRssMB())), 20);
  const t0 = performance.now();
  try {
    const value = await fn();
    return { value, ms: performance.now() - t0, peakGrowthMB: Math.max(peak, browserRssMB()) - before };
  } finally {
    clearInterval(sampler);
  }
}

const file = workload(sizeMB, 'delete');
const server = spawn('node', ['--import', 'tsx', path.join(here, '../test/browser/serve.ts')], {
  env: { ...process.env, PORT: String(port), BENCH_DATA_DIR: DATA_DIR }, stdio: ['ignore', 'pipe', 'inherit'],
});
const userDataDir = path.join(DATA_DIR, `chromium-profile-pages-${process.pid}`);
const context = await (async () => {
  await new Promise<void>((resolve) => server.stdout.on('data', (d) => String(d).includes('serving') && resolve()));
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
})();
try {
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${port}/harness/`);
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
  await page.evaluate(async ({ name, password }) => {
    const root = await navigator.storage.getDirectory();
    const writable = await (await root.getFileHandle('bench.db', { create: true })).createWritable();
    await (await fetch(`/bench-data/${name}`)).body!.pipeTo(writable);
    await window.harness.open({ databasePath: '/bench.db', backupDir: '/backups', password, create: false, incremental: true });
  }, { name: path.basename(file), password: PASSWORD });

  const fullBackup = () => page.evaluate(async () => {
    const r = await window.harness.keep!.createBackup({ incremental: false, force: true });
    if (!r.success) throw new Error(r.error);
    await (await (await navigator.storage.getDirectory()).getDirectoryHandle('backups')).removeEntry(r.backupPath!.split('/').pop()!);
    return r.sizeBytes;
  });
  const fullBefore = await measured(fullBackup);
  console.log(`full createBackup before any generation: ${fullBefore.ms.toFixed(0)} ms, +${fullBefore.peakGrowthMB.toFixed(1)} MB`);
  const backup = () => page.evaluate(async () => {
    const r = await window.harness.keep!.createBackup();
    if (!r.success) throw new Error(r.error);
    return { generation: r.generation!, pagesWritten: r.pagesWritten!, bytes: r.sizeBytes };
  });
  const generations = [await measured(backup)];
  console.log(`generation 1 (full): ${generations[0]!.ms.toFixed(0)} ms, +${generations[0]!.peakGrowthMB.toFixed(1)} MB`);
  const pages = fs.statSync(file).size / 4096;
  for (let day = 1; day <= days; day++) {
    await page.evaluate(async (rows) => {
      const keep = window.harness.keep!;
      await keep.exec(`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${rows})
        UPDATE notes SET body = hex(randomblob(300)) || ' lorem ipsum dolor sit amet' WHERE id IN (SELECT 1 + abs(random()) % (SELECT max(id) FROM notes) FROM c)`);
      await keep.exec(`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${rows})
        UPDATE attachments SET data = randomblob(1500) WHERE id IN (SELECT 1 + abs(random()) % (SELECT max(id) FROM attachments) FROM c)`);
    }, Math.round((0.01 * pages) / 2));
    generations.push(await measured(backup));
    const g = generations.at(-1)!;
    console.log(`generation ${g.value.generation}: ${g.value.pagesWritten} pages, ${g.ms.toFixed(0)} ms, +${g.peakGrowthMB.toFixed(1)} MB`);
  }
  const verify = await measured(() => page.evaluate(async () => {
    const r = await window.harness.keep!.verifyGeneration('latest');
    if (!r.ok) throw new Error(r.detail);
    return r.generation;
  }));
  console.log(`verifyGeneration of generation ${verify.value}: ${verify.ms.toFixed(0)} ms, +${verify.peakGrowthMB.toFixed(1)} MB`);
  const restore = await measured(() => page.evaluate(async () => {
    const r = await window.harness.keep!.restoreGeneration('latest');
    if (!r.success) throw new Error(r.error);
    // The kept database is not part of what is measured next.
    await (await navigator.storage.getDirectory()).removeEntry(r.preRestorePath!.slice(1));
    return r.generation!;
  }));
  console.log(`restore of generation ${restore.value}: ${restore.ms.toFixed(0)} ms, +${restore.peakGrowthMB.toFixed(1)} MB`);
  const full = await measured(fullBackup);
  console.log(`full createBackup: ${full.ms.toFixed(0)} ms, +${full.peakGrowthMB.toFixed(1)} MB`);
  const incremental = generations.slice(1);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const lines = [
    `cipherkeep page store in Chromium (OPFS, on-disk profile) — ${new Date().toISOString()} — ${sizeMB} MB notes database, ${days} incremental generations of ~1% each`,
    '',
    '| measure | value |',
    '| --- | --- |',
    `| first (full) generation | ${generations[0]!.ms.toFixed(0)} ms, +${generations[0]!.peakGrowthMB.toFixed(1)} MB |`,
    `| incremental generation (median) | ${median(incremental.map((g) => g.ms)).toFixed(0)} ms, ${median(incremental.map((g) => g.value.bytes / 2 ** 20)).toFixed(1)} MB written, +${Math.max(...incremental.map((g) => g.peakGrowthMB)).toFixed(1)} MB peak |`,
    `| verifyGeneration('latest') (assemble + page checks, nothing written) | ${verify.ms.toFixed(0)} ms, +${verify.peakGrowthMB.toFixed(1)} MB peak |`,
    `| restoreGeneration('latest') (assemble + page checks, quick_check, keep the replaced database, swap) | ${restore.ms.toFixed(0)} ms, +${restore.peakGrowthMB.toFixed(1)} MB peak |`,
    `| full createBackup, for comparison: before any generation / after the restore | ${fullBefore.ms.toFixed(0)} ms, +${fullBefore.peakGrowthMB.toFixed(1)} MB peak / ${full.ms.toFixed(0)} ms, +${full.peakGrowthMB.toFixed(1)} MB peak |`,
    '',
    'peak: resident memory growth of all of Chromium\'s processes during the step (target: ≤ 64 MB on 500 MB)',
  ];
  fs.mkdirSync(results, { recursive: true });
  fs.writeFileSync(path.join(results, `${values.name}.txt`), `${lines.join('\n')}\n`);
  console.log(`\n${lines.join('\n')}\n\nwrote ${path.join(results, values.name!)}.txt`);
} finally {
  await context.close();
  server.kill();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
