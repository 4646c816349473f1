/**
 * One measured backup in a fresh process (so peak RSS is this run's alone):
 *   node --import tsx bench/node-backup.ts cipherkeep|native|cipherkeep-open|cipherkeep-incremental <db> <workdir>
 * Prints JSON: openMs, exportMs, verifyMs, totalMs, bytes, rssBeforeMB, peakRssMB.
 * cipherkeep's backup runs as the CLI's does, in a process that has not used
 * the engine before; how long opening the database takes is measured in a
 * process of its own (cipherkeep-open): opened first in the backup's process,
 * its queries started V8's compile of two of the engine's largest functions, which
 * then ran beside the backup. cipherkeep-incremental makes one page-store
 * generation (createBackup({ incremental: true })) in <workdir>, which it
 * keeps: the generations before it are there.
 */
import fs from 'node:fs';
import path from 'node:path';
import NativeDatabase from '@signalapp/sqlcipher';
import { BackupService, nodeEngine, openDatabase } from '../src/node.ts';
import { PASSWORD } from './workloads.ts';

const [method, db, work] = process.argv.slice(2) as [string, string, string];
const incremental = method === 'cipherkeep-incremental';
if (!incremental) fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const status = (field: string) => Number(/(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(field))!)![1]) / 1024;
const now = () => performance.now();
let result: Record<string, number>;

if (method === 'native') {
  const rssBeforeMB = status('VmRSS');
  const t0 = now();
  const source = new NativeDatabase(db);
  source.pragma(`key = '${PASSWORD}'`);
  source.prepare('SELECT count(*) FROM sqlite_schema').get();
  const t1 = now();
  const target = path.join(work, 'backup.db');
  source.exec(`ATTACH DATABASE '${target}' AS backup KEY '${PASSWORD}'`);
  source.prepare("SELECT sqlcipher_export('backup')").all();
  source.exec('DETACH DATABASE backup');
  source.close();
  const t2 = now();
  const copy = new NativeDatabase(target);
  copy.pragma(`key = '${PASSWORD}'`);
  const ok = copy.pragma('quick_check') as Array<{ quick_check: string }>;
  copy.prepare('SELECT count(*) FROM notes').get();
  copy.close();
  const t3 = now();
  if (ok[0]?.quick_check !== 'ok') throw new Error('native backup failed quick_check');
  result = { openMs: t1 - t0, exportMs: t2 - t1, verifyMs: t3 - t2, totalMs: t3 - t0, bytes: fs.statSync(target).size, rssBeforeMB, peakRssMB: status('VmHWM') };
} else if (method === 'cipherkeep-open') {
  await nodeEngine();
  const t0 = now();
  const probe = await openDatabase(db, { password: PASSWORD, readonly: true });
  await probe.close();
  result = { openMs: now() - t0 };
} else {
  await nodeEngine();
  const rssBeforeMB = status('VmRSS');
  const service = new BackupService({ databasePath: db, password: PASSWORD, backupDir: work, maxBackups: 1, incremental });
  // Export: from its 0% event to the first verify event, where the page check starts (the copy and the key derivation come before it; opening the copy after).
  let exportStart = 0;
  let verifyStart = 0;
  const t1 = now();
  const r = await service.createBackup({
    force: true,
    onProgress: (p) => {
      if (p.phase === 'export' && !exportStart) exportStart = now();
      if (p.phase === 'verify' && !verifyStart) verifyStart = now();
    },
  });
  const t2 = now();
  if (!r.success) throw new Error(r.error);
  result = { openMs: 0, exportMs: verifyStart - exportStart, verifyMs: t2 - verifyStart, totalMs: t2 - t1, bytes: r.sizeBytes, rssBeforeMB, peakRssMB: status('VmHWM'), ...(incremental ? { pagesWritten: r.pagesWritten ?? 0, full: r.full ? 1 : 0 } : {}) };
}
if (!incremental) fs.rmSync(work, { recursive: true, force: true });
console.log(JSON.stringify(result));
