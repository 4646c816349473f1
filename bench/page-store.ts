/**
 * npm run bench:pages [-- --size 1000 --days 40 --change 0.01 --reps 3 --mode delete|wal --name page-store --out dir]
 *
 * Incremental backups (the page store) against full ones, side by side on
 * one database (notes-app shaped, written by native SQLCipher, cached under
 * bench/.data/): each day native SQLCipher rewrites rows on `change` of the
 * pages, then the service makes a generation: createBackup({ incremental:
 * true }) from the password, in a fresh process, as a scheduled CLI run
 * does, keeping the newest 30 (the service's default): from day 31 each
 * generation also deletes the oldest, and every 7th looks for packs to
 * repack. Measured, each step in a fresh process: the service's full
 * createBackup (at the start and every 10 days: the disk's speed drifts),
 * and a full backup's bare work (copy + page HMAC check of the whole file);
 * each generation; the store's size after `days` generations; restoring
 * the newest against copying a full backup; peak memory growth.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { pbkdf2Sync } from 'node:crypto';
import { parseArgs } from 'node:util';
import NativeDatabase from '@signalapp/sqlcipher';
import { DATA_DIR, PASSWORD, workload } from './workloads.ts';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '1000' }, days: { type: 'string', default: '40' }, change: { type: 'string', default: '0.01' },
    reps: { type: 'string', default: '3' }, mode: { type: 'string', default: 'delete' }, name: { type: 'string', default: 'page-store' }, out: { type: 'string' },
  },
});
const sizeMB = Number(values.size);
const days = Number(values.days);
const change = Number(values.change);
const reps = Number(values.reps);
const here = import.meta.dirname;
const results = path.resolve(values.out ?? path.join(here, 'results'));
const work = path.join(DATA_DIR, `page-store-work-${process.pid}`);
const MB = 1024 * 1024;
/** The service's default: the newest 30 generations (DEFAULT_GENERATION_RETENTION). */
const RETAINED = 30;
const PAGE = 4096;

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const settle = () => execFileSync('sync');

function step(args: string[], key: string): Record<string, any> {
  settle();
  const out = execFileSync('node', ['--import', 'tsx', path.join(here, 'page-store-op.ts'), ...args], { encoding: 'utf8', env: { ...process.env, CK_KEY: key } });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

/**
 * The service's createBackup from the password in a fresh process, as bench/run.ts measures it: full (snapshot copy,
 * page check) into a scratch directory, or incremental (one more generation) into `dir`.
 */
function createBackup(db: string, incremental?: { dir: string }): Record<string, any> {
  settle();
  const args = incremental ? ['cipherkeep-incremental', db, incremental.dir] : ['cipherkeep', db, path.join(work, 'service')];
  const out = execFileSync('node', ['--import', 'tsx', path.join(here, 'node-backup.ts'), ...args], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

/** Rewrites rows in place (same sizes, so only their leaf pages change) on about `fraction` of the pages, half notes and half attachments. */
function mutate(db: string, fraction: number, pages: number): void {
  const native = new NativeDatabase(db);
  try {
    native.pragma(`key = '${PASSWORD}'`);
    const target = Math.max(1, Math.round(fraction * pages) - 1); // page 1 changes with any commit
    const maxNote = Number((native.prepare('SELECT max(id) AS n FROM notes').get() as { n: number }).n);
    const maxAttachment = Number((native.prepare('SELECT max(id) AS n FROM attachments').get() as { n: number }).n);
    const note = native.prepare("UPDATE notes SET body = hex(randomblob(300)) || ' lorem ipsum dolor sit amet' WHERE id = ?");
    const attachment = native.prepare('UPDATE attachments SET data = randomblob(1500) WHERE id = ?');
    native.exec('BEGIN');
    for (let i = 0; i < target; i++) {
      if (i % 2) attachment.run([1 + Math.floor(Math.random() * maxAttachment)]);
      else note.run([1 + Math.floor(Math.random() * maxNote)]);
    }
    native.exec('COMMIT');
  } finally {
    native.close();
  }
}

const storeDir = (backups: string) => path.join(backups, fs.readdirSync(backups).find((n) => n.endsWith('.pages'))!);

function dirBytes(dir: string): number {
  return fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
}

fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
fs.mkdirSync(results, { recursive: true });
try {
  const mode = values.mode === 'wal' ? 'wal' : 'delete';
  const base = workload(sizeMB, mode);
  const live = path.join(work, 'live.db');
  fs.copyFileSync(base, live);
  const dbBytes = fs.statSync(live).size;
  const pages = dbBytes / PAGE;
  const salt = fs.readFileSync(live).subarray(0, 16);
  const key = pbkdf2Sync(PASSWORD, salt, 256_000, 32, 'sha512').toString('hex');
  const backups = path.join(work, 'backups');
  const full = path.join(work, 'full.db');

  const fulls = Array.from({ length: reps }, () => step(['full', live, full], key));
  const services = Array.from({ length: reps }, () => createBackup(live));
  console.log(`full backup: ${median(fulls.map((r) => r.totalMs)).toFixed(0)} ms (copy + page check), createBackup ${median(services.map((r) => r.totalMs)).toFixed(0)} ms`);

  // The service's generations, one a day (createBackup's result: bytesWritten as sizeBytes).
  const generation = () => {
    const r = createBackup(live, { dir: backups });
    return { ...r, bytesWritten: r.bytes, pageCount: pages, rssGrowthMB: r.peakRssMB - r.rssBeforeMB };
  };
  const generations: Array<Record<string, any>> = [generation()];
  let storeAtRetained = NaN;
  console.log(`generation 1 (full): ${generations[0]!.totalMs.toFixed(0)} ms, ${(generations[0]!.bytesWritten / MB).toFixed(1)} MB`);
  for (let day = 1; day < days; day++) {
    if (day % 10 === 0) services.push(createBackup(live));
    mutate(live, change, pages);
    generations.push(generation());
    const g = generations.at(-1)!;
    if (generations.length === RETAINED && days > RETAINED) storeAtRetained = dirBytes(storeDir(backups));
    console.log(`generation ${day + 1}: ${g.pagesWritten} pages (${((100 * g.pagesWritten) / g.pageCount).toFixed(2)}%), ${(g.bytesWritten / MB).toFixed(2)} MB, ${g.totalMs.toFixed(0)} ms, +${g.rssGrowthMB.toFixed(1)} MB`);
  }
  const store = storeDir(backups);
  const storeBytes = dirBytes(store);
  if (generations.length <= RETAINED) storeAtRetained = storeBytes;
  const kept = Math.min(generations.length, RETAINED);

  const restored = path.join(work, 'restored.db');
  const restores = Array.from({ length: reps }, () => step(['restore', store, restored], key));
  const restoresCopying = Array.from({ length: reps }, () => step(['restore-copying', store, restored], key));
  // The live file was not written since its last generation, and a snapshot of an idle rollback-journal database is the
  // file itself. (A WAL-mode one is put in rollback mode in its snapshot: page 1 differs.)
  if (mode === 'delete' && !fs.readFileSync(restored).equals(fs.readFileSync(live))) throw new Error('the restored generation differs from the database it was made from');
  const copies = Array.from({ length: reps }, () => step(['copy', full, path.join(work, 'copy.db')], key));
  const copyVerifies = Array.from({ length: reps }, () => step(['copy-verify', full, path.join(work, 'copy.db')], key));
  // What the issue compares with: the service restoring a full backup (verify, keep the current database, copy, verify again: quick_check twice). Slow: once.
  const serviceRestore = step(['service-restore', live, path.join(work, 'service-restore')], key);

  const incremental = generations.slice(1);
  const fullMs = median(fulls.map((r) => r.totalMs));
  const serviceMs = median(services.map((r) => r.totalMs));
  const incBytes = median(incremental.map((g) => g.bytesWritten));
  const incMs = median(incremental.map((g) => g.totalMs));
  // From generation 31 each deletes the oldest; the service's every 7th (seq % 7) of those also looks for packs to repack.
  const steady = incremental.filter((_, i) => i + 2 > RETAINED);
  const repackDays = steady.filter((_, i) => (i + RETAINED + 1) % 7 === 0);
  const steadyMs = steady.length ? median(steady.filter((g) => !repackDays.includes(g)).map((g) => g.totalMs)) : NaN;
  const repackMs = repackDays.length ? Math.max(...repackDays.map((g) => g.totalMs)) : NaN;
  const restoreMs = median(restores.map((r) => r.totalMs));
  const restoreCopyingMs = median(restoresCopying.map((r) => r.totalMs));
  const copyMs = median(copies.map((r) => r.totalMs));
  const copyVerifyMs = median(copyVerifies.map((r) => r.totalMs));
  const figures = {
    date: new Date().toISOString(), node: process.version, cores: execFileSync('nproc').toString().trim(), reps,
    database: { bytes: dbBytes, pages, journalMode: mode }, days, changeTarget: change,
    changedPagesMedianPct: +(100 * median(incremental.map((g) => g.pagesWritten / g.pageCount))).toFixed(2),
    fullBackup: { copyPlusCheckMs: fullMs, createBackupMs: serviceMs, peakRssGrowthMB: median(fulls.map((r) => r.rssGrowthMB)) },
    firstGeneration: { ms: generations[0]!.totalMs, bytes: generations[0]!.bytesWritten },
    incremental: {
      bytesWrittenMedian: incBytes, bytesVsDatabase: +(incBytes / dbBytes).toFixed(4),
      createBackupMsMedian: incMs, timeVsCreateBackup: +(incMs / serviceMs).toFixed(3), timeVsFull: +(incMs / fullMs).toFixed(3),
      msMax: Math.max(...incremental.map((g) => g.totalMs)),
      deletingOldestMsMedian: steadyMs, repackDayMsMax: repackMs, fullCreateBackupMsSamples: services.map((r) => Math.round(r.totalMs)),
      peakRssGrowthMBMax: Math.max(...generations.map((g) => g.rssGrowthMB)), peakRssGrowthMBMedian: median(incremental.map((g) => g.rssGrowthMB)),
    },
    store: {
      generations: generations.length, bytes: storeBytes, vsDatabase: +(storeBytes / dbBytes).toFixed(3), fullBackupsWouldBe: kept,
      atRetainedBytes: storeAtRetained, atRetainedVsDatabase: +(storeAtRetained / dbBytes).toFixed(3),
    },
    restore: {
      newestMs: restoreMs, copyFullBackupMs: copyMs, copyAndCheckFullBackupMs: copyVerifyMs,
      serviceRestoreBackupMs: serviceRestore.totalMs,
      withoutReadIntoMs: restoreCopyingMs, withoutReadIntoVsCopyAndCheck: +(restoreCopyingMs / copyVerifyMs).toFixed(2),
      withoutReadIntoPeakRssGrowthMB: Math.max(...restoresCopying.map((r) => r.rssGrowthMB)),
      vsCopy: +(restoreMs / copyMs).toFixed(2), vsCopyAndCheck: +(restoreMs / copyVerifyMs).toFixed(2), vsServiceRestoreBackup: +(restoreMs / serviceRestore.totalMs).toFixed(2),
      peakRssGrowthMB: Math.max(...restores.map((r) => r.rssGrowthMB)),
    },
  };
  const f = figures;
  const mb = (n: number) => `${(n / MB).toFixed(1)} MB`;
  const ok = (pass: boolean) => (pass ? 'met' : 'NOT met');
  const lines = [
    `cipherkeep page store benchmark — ${f.date} — ${mb(dbBytes)} database (${pages} pages, ${mode} journal mode), ${generations.length} daily generations, ${f.changedPagesMedianPct}% of pages changed per day (median), ${reps} repetitions of full/restore steps, node ${f.node}, ${f.cores} cores`,
    '',
    '| measure | value | target |',
    '| --- | --- | --- |',
    `| full backup: copy + page HMAC check | ${fullMs.toFixed(0)} ms | |`,
    `| full backup: createBackup (service, from the password) | ${serviceMs.toFixed(0)} ms | |`,
    `| first generation (full) | ${f.firstGeneration.ms.toFixed(0)} ms, ${mb(f.firstGeneration.bytes)} | |`,
    `| incremental: bytes written (median) | ${mb(incBytes)} = ${(100 * f.incremental.bytesVsDatabase).toFixed(2)}% of the database | ≤ 2%: ${ok(f.incremental.bytesVsDatabase <= 0.02)} |`,
    // Both from the password in a fresh process: the key derivation (~120 ms alone) is in each.
    `| incremental: createBackup({ incremental: true }) (median of generations 2–${generations.length}) | ${incMs.toFixed(0)} ms = ${f.incremental.timeVsCreateBackup}x createBackup (${serviceMs.toFixed(0)} ms, median of ${services.length}: ${f.incremental.fullCreateBackupMsSamples.join(', ')}); ${f.incremental.timeVsFull}x copy + page check | ≤ 0.2x createBackup: ${ok(f.incremental.timeVsCreateBackup <= 0.2)} |`,
    ...(steady.length ? [`| of which, once 30 are kept: deleting the oldest (median) / the weekly repack (max) | ${steadyMs.toFixed(0)} ms = ${(steadyMs / serviceMs).toFixed(3)}x / ${repackMs.toFixed(0)} ms = ${(repackMs / serviceMs).toFixed(2)}x createBackup | |`] : []),
    `| ${kept} generations: store size | ${mb(storeAtRetained)} = ${f.store.atRetainedVsDatabase}x the database (full backups: ${kept}x) | ≤ 1.5x: ${ok(f.store.atRetainedVsDatabase <= 1.5)} |`,
    ...(generations.length > RETAINED ? [`| after ${generations.length} days (${RETAINED} kept, the oldest deleted each day): store size | ${mb(storeBytes)} = ${f.store.vsDatabase}x the database (dead pages stay until their pack is half dead: repackBelow) | |`] : []),
    `| restore newest generation (assemble + check every page) | ${restoreMs.toFixed(0)} ms = ${f.restore.vsCopyAndCheck}x copying a full backup + page check (${copyVerifyMs.toFixed(0)} ms); ${f.restore.vsCopy}x a plain copy (${copyMs.toFixed(0)} ms); ${f.restore.vsServiceRestoreBackup}x the service's restoreBackup of a full backup (${serviceRestore.totalMs.toFixed(0)} ms, one run) | ≤ 1.2x: ${ok(f.restore.vsCopyAndCheck <= 1.2)} (vs copy + check) |`,
    `| the same through a store without readInto (a new buffer per read) | ${restoreCopyingMs.toFixed(0)} ms = ${f.restore.withoutReadIntoVsCopyAndCheck}x copy + page check | |`,
    `| peak memory growth: a generation (median, max) / a restore / a restore without readInto / a full backup | ${f.incremental.peakRssGrowthMBMedian.toFixed(1)}, ${f.incremental.peakRssGrowthMBMax.toFixed(1)} / ${f.restore.peakRssGrowthMB.toFixed(1)} / ${f.restore.withoutReadIntoPeakRssGrowthMB.toFixed(1)} / ${f.fullBackup.peakRssGrowthMB.toFixed(1)} MB | ≤ 64 MB on 500 MB: ${dbBytes < 600 * MB ? ok(Math.max(f.incremental.peakRssGrowthMBMax, f.restore.peakRssGrowthMB) <= 64) : 'see the 500 MB run'} |`,
  ];
  fs.writeFileSync(path.join(results, `${values.name}.txt`), `${lines.join('\n')}\n`);
  fs.writeFileSync(path.join(results, `${values.name}.json`), `${JSON.stringify({ ...figures, generations }, null, 2)}\n`);
  console.log(`\n${lines.join('\n')}\n\nwrote ${path.join(results, values.name!)}.{txt,json}`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
