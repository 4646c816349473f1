/**
 * npm run bench [-- --sizes 30,100,500 --reps 3 --modes delete,wal --no-browser --no-s3 --name 500mb --out dir]
 *
 * For each database (size × journal mode), in the same run and on the same
 * files: a plain file copy (the physical floor), the reference method on
 * native SQLCipher (ATTACH … KEY + sqlcipher_export + quick_check), and
 * cipherkeep's createBackup (export + verify) on Node and in Chromium over
 * OPFS. Every Node measurement runs in a fresh process so its peak RSS is its
 * own. Reports medians and spread, ratios against native measured here, as
 * text, JSON and an SVG chart under bench/results/. The off-site column
 * (bench/s3.ts: 100 MB — or the largest size measured, if smaller — to Swift
 * on loopback against `curl -T`, and the service's upload and read-back) is
 * added unless --no-s3.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { chromium, type Browser, type BrowserContext } from '@playwright/test';
import { DATA_DIR, PASSWORD, workload } from './workloads.ts';
import { browserRssMB } from './browser-memory.ts';

const { values } = parseArgs({
  options: { sizes: { type: 'string', default: '30,100' }, reps: { type: 'string', default: '3' }, modes: { type: 'string', default: 'delete,wal' }, 'no-browser': { type: 'boolean' }, 'no-s3': { type: 'boolean' }, name: { type: 'string', default: 'latest' }, out: { type: 'string' } },
});
const sizes = values.sizes!.split(',').map(Number);
const reps = Number(values.reps);
const modes = values.modes!.split(',') as Array<'delete' | 'wal'>;
const MB = 1024 * 1024;
const here = import.meta.dirname;
const results = path.resolve(values.out ?? path.join(here, 'results'));
const work = path.join(DATA_DIR, 'work');

interface Run { openMs: number; exportMs: number; verifyMs: number; totalMs: number; bytes: number; rssBeforeMB?: number; peakRssMB?: number; wasmMB?: number }
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[]) => Math.max(...xs) - Math.min(...xs);

function nodeRun(method: 'native' | 'cipherkeep' | 'cipherkeep-open', file: string): Run {
  return JSON.parse(execFileSync('node', ['--import', 'tsx', path.join(here, 'node-backup.ts'), method, file, work], { encoding: 'utf8' }).trim().split('\n').at(-1)!);
}

/** Waits until the disk has written back what earlier runs left dirty, so no run pays for another's writes. */
function settle(): void {
  execFileSync('sync');
}

function copyRun(file: string): Run {
  const target = path.join(DATA_DIR, 'copy.tmp');
  const t0 = performance.now();
  fs.copyFileSync(file, target);
  const fd = fs.openSync(target, 'r+');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const ms = performance.now() - t0;
  fs.rmSync(target);
  return { openMs: 0, exportMs: ms, verifyMs: 0, totalMs: ms, bytes: fs.statSync(file).size };
}

type BrowserResult = Run[] | { failed: string };

/**
 * Chromium with a real (on-disk) profile, as users have. Also measured: a
 * private window, the default of Playwright's contexts, whose OPFS lives in
 * the browser process's memory and answers each call over IPC.
 */
async function browserRuns(files: string[], profile: 'persistent' | 'incognito'): Promise<Map<string, BrowserResult>> {
  const port = 4199;
  const server = spawn('node', ['--import', 'tsx', path.join(here, '../test/browser/serve.ts')], {
    env: { ...process.env, PORT: String(port), BENCH_DATA_DIR: DATA_DIR }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const userDataDir = path.join(DATA_DIR, `chromium-profile-${process.pid}`);
  const launch = {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  };
  let persistent: BrowserContext | null = null;
  let incognito: Browser | null = null;
  const out = new Map<string, BrowserResult>();
  try {
    await new Promise<void>((resolve) => server.stdout.on('data', (d) => String(d).includes('serving') && resolve()));
    if (profile === 'persistent') persistent = await chromium.launchPersistentContext(userDataDir, launch);
    else incognito = await chromium.launch(launch);
    for (const file of files) {
      const context = persistent ?? (await incognito!.newContext());
      try {
        const page = await context.newPage();
        await page.goto(`http://127.0.0.1:${port}/harness/`);
        await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
        const openMs = await page.evaluate(async ({ name, password }) => {
          // Load the database into OPFS, streamed.
          const root = await navigator.storage.getDirectory();
          const writable = await (await root.getFileHandle('bench.db', { create: true })).createWritable();
          await (await fetch(`/bench-data/${name}`)).body!.pipeTo(writable);
          const t0 = performance.now();
          await window.harness.open({ databasePath: '/bench.db', password, create: false });
          return performance.now() - t0;
        }, { name: path.basename(file), password: PASSWORD });
        const runs: Run[] = [];
        for (let i = 0; i < reps; i++) {
          settle();
          await new Promise((r) => setTimeout(r, 200)); // let the last run's garbage go
          const rssBeforeMB = browserRssMB();
          let peakRssMB = rssBeforeMB;
          const sampler = setInterval(() => (peakRssMB = Math.max(peakRssMB, browserRssMB())), 20);
          const run = await page.evaluate(async () => {
            const keep = window.harness.keep!;
            let verifyAt = 0;
            let exportAt = 0;
            const start = performance.now();
            const r = await keep.createBackup({ force: true }, (p) => {
              if (p.phase === 'export' && !exportAt) exportAt = performance.now();
              if (p.phase === 'verify' && !verifyAt) verifyAt = performance.now();
            });
            const end = performance.now();
            if (!r.success) throw new Error(r.error);
            const mem = await keep.memoryUsage();
            // One backup at a time: a private window's quota is a share of memory.
            await (await (await navigator.storage.getDirectory()).getDirectoryHandle('backups')).removeEntry(r.backupPath!.split('/').pop()!);
            return { exportMs: verifyAt - exportAt, verifyMs: end - verifyAt, totalMs: end - start, bytes: r.sizeBytes, wasmMB: (mem.wasmBytes ?? 0) / 2 ** 20 };
          }).finally(() => clearInterval(sampler));
          runs.push({ ...run, openMs, rssBeforeMB, peakRssMB: Math.max(peakRssMB, browserRssMB()) });
        }
        await page.evaluate(async () => {
          await window.harness.keep!.close();
          await (await navigator.storage.getDirectory()).removeEntry('bench.db');
        });
        out.set(file, runs);
        await page.close();
      } catch (e) {
        // Report it and go on (a private window's quota, for one, is a share of memory).
        out.set(file, { failed: (e as Error).message.split('\n')[0]!.replace(/^.*?Error: /, '') });
      } finally {
        if (incognito) await context.close();
      }
    }
  } finally {
    await (persistent ?? incognito)?.close();
    server.kill();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  return out;
}

fs.mkdirSync(results, { recursive: true });
const rows: Array<Record<string, unknown>> = [];
const files: string[] = [];
for (const size of sizes) for (const mode of modes) files.push(workload(size, mode));
const none = new Map<string, BrowserResult>();
const browser = values['no-browser'] ? none : await browserRuns(files, 'persistent');
const privateWindow = values['no-browser'] ? none : await browserRuns(files, 'incognito');

for (const file of files) {
  const runs = { copy: [] as Run[], native: [] as Run[], cipherkeep: [] as Run[] };
  for (let i = 0; i < reps; i++) {
    settle();
    runs.copy.push(copyRun(file));
    settle();
    runs.native.push(nodeRun('native', file));
    settle();
    runs.cipherkeep.push({ ...nodeRun('cipherkeep', file), openMs: nodeRun('cipherkeep-open', file).openMs });
  }
  const mb = fs.statSync(file).size / MB;
  const stat = (xs: Run[], k: keyof Run) => ({ median: +median(xs.map((r) => r[k] ?? 0)).toFixed(1), spread: +spread(xs.map((r) => r[k] ?? 0)).toFixed(1) });
  const rate = (ms: number) => +(mb / (ms / 1000)).toFixed(1);
  const summary = (xs: Run[]) => ({
    open: stat(xs, 'openMs'), export: stat(xs, 'exportMs'), verify: stat(xs, 'verifyMs'), total: stat(xs, 'totalMs'),
    mbps: rate(median(xs.map((r) => r.totalMs))), peakRssGrowthMB: +median(xs.map((r) => r.peakRssMB! - r.rssBeforeMB!)).toFixed(1),
  });
  const measured = (r: BrowserResult | undefined) => (Array.isArray(r) ? r : []);
  const b = measured(browser.get(file));
  const p = measured(privateWindow.get(file));
  const failed = (r: BrowserResult | undefined) => (r && !Array.isArray(r) ? r : null);
  const nodeMs = median(runs.cipherkeep.map((r) => r.totalMs));
  const row = {
    workload: path.basename(file, '.db'), sizeMB: +mb.toFixed(1),
    copy: { ms: stat(runs.copy, 'totalMs'), mbps: rate(median(runs.copy.map((r) => r.totalMs))) },
    native: summary(runs.native),
    cipherkeep: summary(runs.cipherkeep),
    browser: b.length ? { ...summary(b), wasmMB: +Math.max(...b.map((r) => r.wasmMB!)).toFixed(1) } : failed(browser.get(file)),
    privateWindow: p.length ? summary(p) : failed(privateWindow.get(file)),
    ratios: {
      backupTimeVsNative: +(nodeMs / median(runs.native.map((r) => r.totalMs))).toFixed(2),
      backupTimeVsCopy: +(nodeMs / median(runs.copy.map((r) => r.totalMs))).toFixed(2),
      exportSpeedVsCopy: +(median(runs.copy.map((r) => r.totalMs)) / median(runs.cipherkeep.map((r) => r.exportMs))).toFixed(2),
      browserSpeedVsNode: b.length ? +(nodeMs / median(b.map((r) => r.totalMs))).toFixed(2) : null,
      privateWindowSpeedVsNode: p.length ? +(nodeMs / median(p.map((r) => r.totalMs))).toFixed(2) : null,
    },
  };
  rows.push(row);
  console.log(`measured ${row.workload}`);
}

const lines = [
  `cipherkeep benchmark — ${new Date().toISOString()} — ${reps} repetitions, medians (spread = max - min), node ${process.version}, ${execFileSync('nproc').toString().trim()} cores`,
  '',
  'workload              MB   copy MB/s | native: open export verify total ms  MB/s | cipherkeep node: open export verify total ms  MB/s  RSS+MB | Chromium OPFS: export verify total ms  MB/s  RSS+MB | private window: total ms | time vs native  time vs copy  export vs copy  browser vs node  private vs node',
];
const t = (s: { median: number; spread: number }) => `${s.median.toFixed(0)}±${s.spread.toFixed(0)}`;
for (const r of rows as any[]) {
  lines.push([
    r.workload.padEnd(20), String(r.sizeMB).padStart(6), String(r.copy.mbps).padStart(9), '|',
    t(r.native.open), t(r.native.export), t(r.native.verify), t(r.native.total), String(r.native.mbps).padStart(6), '|',
    t(r.cipherkeep.open), t(r.cipherkeep.export), t(r.cipherkeep.verify), t(r.cipherkeep.total), String(r.cipherkeep.mbps).padStart(6), String(r.cipherkeep.peakRssGrowthMB).padStart(6), '|',
    r.browser?.failed ? `failed: ${r.browser.failed}` : r.browser ? `${t(r.browser.export)} ${t(r.browser.verify)} ${t(r.browser.total)} ${String(r.browser.mbps).padStart(6)} ${String(r.browser.peakRssGrowthMB).padStart(6)}` : 'skipped', '|',
    r.privateWindow?.failed ? `failed: ${r.privateWindow.failed}` : r.privateWindow ? t(r.privateWindow.total) : 'skipped', '|',
    `${r.ratios.backupTimeVsNative}x`, `${r.ratios.backupTimeVsCopy}x`, `${r.ratios.exportSpeedVsCopy}x`,
    r.ratios.browserSpeedVsNode === null ? '-' : `${r.ratios.browserSpeedVsNode}x`, r.ratios.privateWindowSpeedVsNode === null ? '-' : `${r.ratios.privateWindowSpeedVsNode}x`,
  ].join(' '));
}
lines.push('', 'targets: time vs native <= 1.0 (100 MB; issue #16: <= 0.25); time vs copy <= 4 (100 MB, issue #16); export vs copy >= 0.5; RSS growth < 64 MB (500 MB); browser vs node >= 0.7');
lines.push('RSS+MB: peak resident memory growth during the backup (Node: the process; Chromium: all of its processes)');
const offsite = values['no-s3'] ? null : offsiteRun();
if (offsite) lines.push('', ...offsite.lines);
const name = values.name!;
fs.writeFileSync(path.join(results, `${name}.txt`), `${lines.join('\n')}\n`);
fs.writeFileSync(path.join(results, `${name}.json`), `${JSON.stringify({ date: new Date().toISOString(), reps, rows, offsite: offsite?.data ?? null }, null, 2)}\n`);
fs.writeFileSync(path.join(results, `${name}.svg`), chart(rows as any[]));
console.log(lines.join('\n'));
console.log(`\nwrote ${path.join(results, name)}.{txt,json,svg}`);

/** The off-site column: bench/s3.ts in a child (it starts Swift when needed); a store that cannot run is reported, not fatal. */
function offsiteRun(): { lines: string[]; data: Record<string, any> | { failed: string } } {
  try {
    // 100 MB, or the largest database measured when that is smaller (the smoke test's 2 MB).
    const mb = Math.min(100, Math.max(...sizes));
    const out = execFileSync('node', ['--import', 'tsx', path.join(here, 's3.ts'), '--json', '--reps', String(reps), '--mb', String(mb)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const d = JSON.parse(out.trim().split('\n').at(-1)!);
    if (d.skipped) return { data: d, lines: [`off-site: skipped (${d.skipped})`] };
    const mbps = (mb: number, ms: number) => (mb / (ms / 1000)).toFixed(0);
    return {
      data: d,
      lines: [
        `off-site: ${d.mb.toFixed(0)} MB to Swift (S3 API) on loopback, median of ${d.reps}`,
        `  S3Target put (multipart, Content-MD5 per part)  ${d.oursMs.toFixed(0)} ms  ${mbps(d.mb, d.oursMs)} MB/s  RSS+${d.oursRssGrowthMB.toFixed(0)} MB`,
        `  curl -T to a presigned URL (the floor)          ${d.curlMs.toFixed(0)} ms  ${mbps(d.mb, d.curlMs)} MB/s  curl peak RSS ${d.curlPeakRssMB.toFixed(0)} MB`,
        `  ours vs curl: ${(d.oursMs / d.curlMs).toFixed(2)}x the time`,
        `  backup service off-site step (${d.service.mb.toFixed(0)} MB workload): upload ${d.service.uploadMs.toFixed(0)} ms, read-back check ${d.service.readBackMs.toFixed(0)} ms (${mbps(d.service.mb, d.service.readBackMs)} MB/s), RSS+${d.service.rssGrowthMB.toFixed(0)} MB for the whole backup`,
      ],
    };
  } catch (e) {
    return { data: { failed: (e as Error).message }, lines: [`off-site: not measured (${(e as Error).message.split('\n')[0]})`] };
  }
}

/** Grouped horizontal bars of MB/s per workload. */
function chart(data: any[]): string {
  const series = [['copy', '#999', 'file copy'], ['native', '#d62728', 'native SQLCipher'], ['cipherkeep', '#1f77b4', 'cipherkeep, Node'], ['browser', '#2ca02c', 'cipherkeep, Chromium OPFS'], ['privateWindow', '#98df8a', 'same, private window']] as const;
  const max = Math.max(...data.flatMap((r) => series.map(([k]) => (k === 'copy' ? r.copy.mbps : r[k]?.mbps ?? 0))));
  const barH = 14;
  const groupH = series.length * barH + 18;
  const width = 760;
  const left = 170;
  const scale = (v: number) => ((width - left - 80) * v) / max;
  let y = 40;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${data.length * groupH + 80}" font-family="sans-serif" font-size="12">`,
    `<text x="10" y="20" font-size="14" font-weight="bold">Backup throughput, MB/s (higher is better; export + verify, file copy alone)</text>`];
  for (const r of data) {
    parts.push(`<text x="10" y="${y + barH}">${r.workload}</text>`);
    series.forEach(([k, color, label], i) => {
      const v = k === 'copy' ? r.copy.mbps : r[k]?.mbps ?? 0;
      parts.push(`<rect x="${left}" y="${y + i * barH}" width="${scale(v).toFixed(1)}" height="${barH - 2}" fill="${color}"/>`,
        `<text x="${left + scale(v) + 4}" y="${y + i * barH + barH - 4}">${label} ${v}</text>`);
    });
    y += groupH;
  }
  parts.push('</svg>');
  return parts.join('\n');
}
