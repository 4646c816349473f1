/**
 * One measured page-store step in a fresh process (so its peak memory is its own):
 *   page-store-op.ts full <db> <target>            copy + page HMAC check of the whole file (a full backup's work)
 *   page-store-op.ts restore <store> <target>      restoreGeneration of the newest generation
 *   page-store-op.ts restore-copying <store> <target>     the same through a store without readInto (a new buffer per read)
 *   page-store-op.ts copy <file> <target>          a plain file copy with fsync
 *   page-store-op.ts copy-verify <file> <target>   the same, then the page HMAC check
 *   page-store-op.ts service-restore <db> <dir>    the service's restoreBackup of a full backup of a copy of <db> (timed: the restore only)
 * The raw key comes as CK_KEY (hex). Prints one line of JSON.
 */
import fs from 'node:fs';
import { resolveSettings } from '../src/engine/cipher.ts';
import { checkPageHmacs } from '../src/backup/page-check.ts';
import { copySnapshot, discard, materialize } from '../src/backup/snapshot.ts';
import { backupGeneration, restoreGeneration } from '../src/backup/page-store/index.ts';
import { BackupService, NodeFileStore, nodeEngine, openDatabase } from '../src/node.ts';
import { nodePageMacs } from '../src/node-page-check.ts';
import type { FileStore } from '../src/files/file-store.ts';
import { PASSWORD } from './workloads.ts';

const [op, a, b, c] = process.argv.slice(2) as [string, string, string, string | undefined];

/** NodeFileStore without `readInto`: every read a new buffer (what the page store did before FileStore had readInto). */
function withoutReadInto(store: FileStore): FileStore {
  return new Proxy(store, {
    get: (target, name) => (name === 'readInto' ? undefined : typeof target[name as keyof FileStore] === 'function' ? (target[name as keyof FileStore] as Function).bind(target) : target[name as keyof FileStore]),
  });
}
const key = new Uint8Array(Buffer.from(process.env.CK_KEY!, 'hex'));
const files = new NodeFileStore();
const settings = resolveSettings({});
const status = (field: string) => Number(/(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(field))!)![1]) / 1024;
/** Starts a memory measurement: the peak (VmHWM) is reset to the current resident size. */
const memoryFrom = () => {
  fs.writeFileSync('/proc/self/clear_refs', '5');
  const before = status('VmRSS');
  return () => ({ rssBeforeMB: before, peakRssMB: status('VmHWM'), rssGrowthMB: status('VmHWM') - before });
};
const now = () => performance.now();

function copyWithFsync(from: string, to: string): number {
  const t0 = now();
  fs.copyFileSync(from, to);
  const fd = fs.openSync(to, 'r+');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  return now() - t0;
}

async function checkFile(path: string): Promise<number> {
  const t0 = now();
  const fd = fs.openSync(path, 'r');
  try {
    const r = await checkPageHmacs((offset, into) => fs.readSync(fd, into, 0, into.length, offset), fs.statSync(path).size, key, settings);
    if (!r.ok) throw new Error(`page ${r.page} failed its HMAC check`);
  } finally {
    fs.closeSync(fd);
  }
  return now() - t0;
}

/**
 * Every step first runs the same code on a small scratch database, so what
 * is measured is the work, as in a running app — not the one-time costs of
 * a fresh process (compiling hash-wasm, WebCrypto's first use: ~0.15 s).
 */
async function warmUp(): Promise<void> {
  const dir = fs.mkdtempSync(`${b}.warmup-`);
  try {
    const db = await openDatabase(`${dir}/w.db`, { key, create: true });
    await db.exec('CREATE TABLE t (v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 500) INSERT INTO t SELECT randomblob(100) FROM c');
    for (let i = 0; i < 2; i++) {
      await db.exec('UPDATE t SET v = randomblob(100) WHERE rowid % 50 = 0');
      await discard(files, `${dir}/s.db`);
      const copied = await copySnapshot(files, `${dir}/w.db`, `${dir}/s.db`);
      const s = await openDatabase(`${dir}/s.db`, { key });
      await materialize(s, copied.pending);
      await s.close();
      await backupGeneration(files, `${dir}/store`, `${dir}/s.db`, key, settings, { now: new Date(), retention: { keepLast: 30 } });
    }
    await db.close();
    await restoreGeneration(files, `${dir}/store`, 'latest', key, `${dir}/r.db`, { pageMacs: nodePageMacs });
    copyWithFsync(`${dir}/r.db`, `${dir}/c.db`);
    await checkFile(`${dir}/c.db`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

let result: Record<string, unknown>;
await nodeEngine();
await warmUp();

if (op === 'full' || op === 'copy' || op === 'copy-verify') {
  fs.rmSync(b, { force: true });
  const memory = memoryFrom();
  const copyMs = copyWithFsync(a, b);
  const verifyMs = op === 'copy' ? 0 : await checkFile(b);
  result = { copyMs, verifyMs, totalMs: copyMs + verifyMs, bytes: fs.statSync(b).size, ...memory() };
  if (op === 'copy') fs.rmSync(b);
} else if (op === 'restore' || op === 'restore-copying') {
  fs.rmSync(b, { force: true });
  const memory = memoryFrom();
  const t0 = now();
  // With the host's page MAC, as the service's restoreGeneration checks pages.
  const r = await restoreGeneration(op === 'restore' ? files : withoutReadInto(new NodeFileStore()), a, 'latest', key, b, { pageMacs: nodePageMacs });
  result = { totalMs: now() - t0, ...memory(), ...r };
} else if (op === 'service-restore') {
  fs.rmSync(b, { recursive: true, force: true });
  fs.mkdirSync(b);
  copyWithFsync(a, `${b}/app.db`);
  const service = new BackupService({ databasePath: `${b}/app.db`, backupDir: `${b}/backups`, password: PASSWORD, maxBackups: 1 });
  const backup = await service.createBackup({ force: true });
  if (!backup.success) throw new Error(backup.error);
  const memory = memoryFrom();
  const t0 = now();
  const r = await service.restoreBackup(backup.backupPath!);
  if (!r.success) throw new Error(r.error);
  result = { totalMs: now() - t0, ...memory() };
  fs.rmSync(b, { recursive: true, force: true });
} else {
  throw new Error(`unknown step ${op}`);
}
console.log(JSON.stringify(result));
