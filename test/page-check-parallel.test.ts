/**
 * Page HMAC checks on every core (src/node-page-check.ts): the same verdict as
 * the in-thread check, on every page and every HMAC algorithm, a damaged page
 * found in whichever range it falls, a cut file refused; and the backup
 * service's verification goes through it.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { openDatabase, BackupService, NodeFileStore } from '../src/node.ts';
import { nodePageChecks, nodePageMacs } from '../src/node-page-check.ts';
import { checkPageHmacs, createPageVerifier } from '../src/backup/page-check.ts';
import { deriveKey, resolveSettings, type CipherSettings } from '../src/engine/cipher.ts';
import { sqlcipher4 } from '../src/backup/key-profiles.ts';
import { fixtureCommand, tempDir } from './helpers.ts';

const FAST = { kdfIterations: 1000 };
// Small ranges, so a 2 MB file is spread over every thread.
const checks = nodePageChecks({ minBytes: 0, threads: 3, rangeBytes: 64 << 10 });

async function database(dir: string, cipher: CipherSettings, rows: number): Promise<{ file: string; key: Uint8Array; settings: Required<CipherSettings> }> {
  const file = path.join(dir, `db-${cipher.hmacAlgorithm ?? 'SHA512'}-${cipher.pageSize ?? 4096}.db`);
  const db = await openDatabase(file, { password: 'pw', create: true, cipher });
  await db.exec(`CREATE TABLE t (v BLOB); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < ${rows}) INSERT INTO t SELECT randomblob(700) FROM c`);
  await db.close();
  const settings = resolveSettings(cipher);
  return { file, key: await deriveKey({ password: 'pw' }, fs.readFileSync(file).subarray(0, 16), settings), settings };
}

const inThread = (file: string, key: Uint8Array, settings: Required<CipherSettings>) => {
  const bytes = fs.readFileSync(file);
  return checkPageHmacs(async (o, into) => (into.set(bytes.subarray(o, o + into.length)), Math.min(into.length, bytes.length - o)), bytes.length, key, settings);
};

describe('page checks on every core (Node/Deno worker threads)', () => {
  it('the host page MAC (nodePageMacs) gives hash-wasm\'s verdict on every page, for SHA1, SHA256 and SHA512', async () => {
    const dir = tempDir('page-macs');
    assert.ok(await nodePageMacs('SHA512', new Uint8Array(32), 4032), 'the threads\' script loads here: the native MAC, not hash-wasm, is under test');
    for (const cipher of [{ ...FAST }, { ...FAST, hmacAlgorithm: 'SHA256', kdfAlgorithm: 'SHA256', pageSize: 1024 }, { ...FAST, hmacAlgorithm: 'SHA1', kdfAlgorithm: 'SHA1', pageSize: 8192 }] as CipherSettings[]) {
      const { file, key, settings } = await database(dir, cipher, 300);
      const bytes = new Uint8Array(fs.readFileSync(file));
      const salt = bytes.subarray(0, 16);
      const [native, wasm] = await Promise.all([createPageVerifier(key, salt, settings, nodePageMacs), createPageVerifier(key, salt, settings)]);
      const bad = bytes.slice();
      bad[settings.pageSize + 5]! ^= 1; // page 2's ciphertext
      bad[3 * settings.pageSize + native.hmacOffset + 1]! ^= 1; // page 4's MAC
      const verdicts = (v: typeof native, b: Uint8Array, shift = 0) =>
        Array.from({ length: b.length / settings.pageSize }, (_, i) => v.check(b.subarray(i * settings.pageSize, (i + 1) * settings.pageSize), i + 1 + shift));
      for (const [b, shift] of [[bytes, 0], [bad, 0], [bytes, 1]] as const) assert.deepEqual(verdicts(native, b, shift), verdicts(wasm, b, shift), `${settings.hmacAlgorithm}`);
      assert.ok(verdicts(native, bytes).every(Boolean), `${settings.hmacAlgorithm}: every page passes`);
      assert.deepEqual(verdicts(native, bad).flatMap((ok, i) => (ok ? [] : [i + 1])), [2, 4], `${settings.hmacAlgorithm}: the damaged pages fail`);
      assert.ok(verdicts(native, bytes, 1).every((ok) => !ok), 'a page checked at another number fails');
    }
  });

  it('agree with the in-thread check for SHA1, SHA256 and SHA512, with progress', async () => {
    const dir = tempDir('page-check-parallel');
    for (const cipher of [{ ...FAST }, { ...FAST, hmacAlgorithm: 'SHA256', kdfAlgorithm: 'SHA256', pageSize: 1024 }, { ...FAST, hmacAlgorithm: 'SHA1', kdfAlgorithm: 'SHA1', pageSize: 8192 }] as CipherSettings[]) {
      const { file, key, settings } = await database(dir, cipher, 3000);
      const size = fs.statSync(file).size;
      let seen = 0;
      const r = await checks(file, key, settings, size, (n) => (seen = n));
      assert.deepEqual(r, { ok: true, pages: size / settings.pageSize }, cipher.hmacAlgorithm);
      assert.deepEqual(r, await inThread(file, key, settings));
      assert.equal(seen, size, 'progress reaches the whole file');
    }
  });

  it('the threads\' page MAC check gives the same verdicts with one-shot hashes and with createHmac (Node before 20.12)', async () => {
    type Check = (bytes: Buffer, at: number, skip: number, pgno: number) => boolean;
    const mac = (await import(new URL('../src/node-page-check-worker.mjs', import.meta.url).href)) as {
      pageMacCheck(algorithm: string, key: Uint8Array, covered: number, hash?: unknown): Check;
    };
    const dir = tempDir('page-mac');
    for (const cipher of [{ ...FAST }, { ...FAST, hmacAlgorithm: 'SHA256', kdfAlgorithm: 'SHA256', pageSize: 1024 }, { ...FAST, hmacAlgorithm: 'SHA1', kdfAlgorithm: 'SHA1', pageSize: 8192 }] as CipherSettings[]) {
      const { file, key, settings } = await database(dir, cipher, 300);
      const bytes = fs.readFileSync(file);
      const covered = settings.pageSize - (settings.hmacAlgorithm === 'SHA512' ? 64 : 32);
      const hmacKey = crypto.pbkdf2Sync(key, bytes.subarray(0, 16).map((b) => b ^ 0x3a), 2, 32, settings.kdfAlgorithm.toLowerCase());
      for (const [way, check] of [['one-shot', mac.pageMacCheck(settings.hmacAlgorithm, hmacKey, covered)], ['createHmac', mac.pageMacCheck(settings.hmacAlgorithm, hmacKey, covered, null)]] as const) {
        const verdicts = (b: Buffer) => Array.from({ length: b.length / settings.pageSize }, (_, i) => check(b, i * settings.pageSize, i === 0 ? 16 : 0, i + 1));
        assert.ok(verdicts(bytes).every(Boolean), `${way} ${settings.hmacAlgorithm}: every page passes`);
        const bad = Buffer.from(bytes);
        bad[settings.pageSize + 5]! ^= 1; // page 2's ciphertext
        bad[3 * settings.pageSize + covered + 1]! ^= 1; // page 4's MAC
        assert.deepEqual(verdicts(bad).flatMap((ok, i) => (ok ? [] : [i + 1])), [2, 4], `${way} ${settings.hmacAlgorithm}: the damaged pages fail`);
        assert.equal(check(bytes, settings.pageSize, 0, 3), false, `${way}: page 2's bytes are not page 3`);
      }
    }
  });

  it('finds a damaged page in any range, the first one when there are several; a wrong key fails page 1; a cut file fails', async () => {
    const dir = tempDir('page-check-parallel-bad');
    const { file, key, settings } = await database(dir, FAST, 3000);
    const bytes = fs.readFileSync(file);
    const pages = bytes.length / 4096;
    for (const page of [1, 2, Math.floor(pages / 2), pages - 1, pages]) {
      const bad = Buffer.from(bytes);
      bad[(page - 1) * 4096 + 100]! ^= 1;
      fs.writeFileSync(file, bad);
      assert.deepEqual(await checks(file, key, settings, bad.length), { ok: false, page }, `page ${page}`);
    }
    const two = Buffer.from(bytes);
    two[(pages - 2) * 4096 + 50]! ^= 1;
    two[10 * 4096 + 50]! ^= 1;
    fs.writeFileSync(file, two);
    assert.deepEqual(await checks(file, key, settings, two.length), { ok: false, page: 11 });
    fs.writeFileSync(file, bytes);
    assert.deepEqual(await checks(file, new Uint8Array(32).fill(7), settings, bytes.length), { ok: false, page: 1 });
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 4096));
    assert.deepEqual(await checks(file, key, settings, bytes.length), { ok: false, page: pages });
    assert.equal(await nodePageChecks()(file, key, settings, 4096), null, 'small files are left to the in-thread check');
  });

  it('a thread that dies fails its ranges instead of leaving the check pending', async () => {
    const { file, key, settings } = await database(tempDir('page-check-dying'), FAST, 300);
    const dying = nodePageChecks({ minBytes: 0, threads: 2, rangeBytes: 64 << 10, script: new URL('./fixtures/dying-page-check-worker.mjs', import.meta.url) });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const pending = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still pending after 10 s'), 10_000)));
    const outcome = await Promise.race([dying(file, key, settings, fs.statSync(file).size).then(() => 'answered', (e: Error) => e.message), pending]);
    clearTimeout(timer);
    assert.match(outcome, /page-check thread exited \(3\)/);
  });

  it('warming starts the threads one at a time (Node), and warmed threads do not keep a process alive', async () => {
    const isDeno = 'Deno' in globalThis;
    // The pool's idle timer is a minute long: a thread left referenced would hold the child that long.
    const out = await new Promise<string>((resolve, reject) => {
      const proc = spawn(...fixtureCommand('warm-page-checks.ts'), { stdio: ['ignore', 'pipe', 'inherit'] });
      const timer = setTimeout(() => (proc.kill(), reject(new Error('the child was still running after 20 s'))), 20_000);
      let text = '';
      proc.stdout.on('data', (d) => (text += d));
      proc.on('close', (code) => (clearTimeout(timer), code === 0 ? resolve(text) : reject(new Error(`child exited ${code}`))));
    });
    const { before, afterWarm, later } = JSON.parse(out) as { before: number; afterWarm: number; later: number };
    if (before < 0) return; // no /proc: nothing more to count
    // Node makes a worker's thread as the Worker is made. Deno's count also moves with threads of its own (one Worker
    // added two here once), so only Node's is counted exactly.
    if (!isDeno) assert.equal(afterWarm, before + 1, 'one thread at first, however often warm() is called');
    assert.ok(later >= before + 3, `all three threads started in the end (${before} → ${afterWarm} → ${later})`);
  });

  it('the backup service checks its backups through it (a page damaged while the backup is verified is caught)', async () => {
    const dir = tempDir('page-check-parallel-service');
    const databasePath = path.join(dir, 'app.db');
    const db = await openDatabase(databasePath, { password: 'pw', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (v BLOB); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 15000) INSERT INTO t SELECT randomblob(700) FROM c');
    await db.close();
    let calls = 0;
    const pool = nodePageChecks({ minBytes: 0 });
    const host = { files: new (await import('../src/node.ts')).NodeFileStore(), open: openDatabase, checkPages: (...a: Parameters<typeof pool>) => (calls++, pool(...a)) };
    const svc = new BackupService({ databasePath, password: 'pw', backupDir: path.join(dir, 'backups'), keyProfile: { ...sqlcipher4, cipher: FAST }, host });
    const r = await svc.createBackup();
    assert.equal(r.success, true, r.error);
    assert.ok(calls >= 1, 'createBackup checked its pages on the pool');
    const bytes = fs.readFileSync(r.backupPath!);
    bytes[bytes.length - 3000]! ^= 1;
    fs.writeFileSync(r.backupPath!, bytes);
    const v = await svc.verifyBackup(r.backupPath!);
    assert.equal(v.ok, false);
    assert.match(!v.ok ? v.detail : '', new RegExp(`page ${bytes.length / 4096} failed its HMAC check`));
  });

  it('createBackup checks the copy once, before the engine opens it; a damaged page is caught there; page 1 rewritten is left to the engine, which checks it as it opens the copy to verify it; a WAL applied means a check after', async () => {
    const dir = tempDir('page-check-early');
    // The phase createBackup was in at each call of the page check, and the order of checks and opens.
    const counted = () => {
      const pool = nodePageChecks({ minBytes: 0 });
      const seen = { phase: '', calls: [] as string[], order: [] as string[], verified: [] as number[] };
      const check = Object.assign(async (...a: Parameters<typeof pool>) => {
        seen.calls.push(seen.phase);
        seen.order.push('check');
        try {
          return await pool(...a);
        } finally {
          seen.order.push('checked');
        }
      }, { warm: pool.warm });
      const open: typeof openDatabase = (file, o) => (seen.order.push(file.endsWith('.tmp') ? 'open copy' : 'open'), openDatabase(file, o));
      return { seen, host: { files: new NodeFileStore(), open, checkPages: check } };
    };
    const make = async (name: string, wal: boolean) => {
      const file = path.join(dir, name);
      const db = await openDatabase(file, { password: 'pw', create: true, cipher: FAST });
      if (wal) await db.exec('PRAGMA journal_mode = WAL');
      await db.exec('CREATE TABLE t (v BLOB); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 3000) INSERT INTO t SELECT randomblob(700) FROM c');
      await db.close();
      return file;
    };
    const backup = async (databasePath: string, hostChange?: (h: ReturnType<typeof counted>['host']) => void, verify?: 'full') => {
      const { seen, host } = counted();
      hostChange?.(host);
      const svc = new BackupService({ databasePath, password: 'pw', backupDir: path.join(dir, `${path.basename(databasePath)}-backups`), keyProfile: { ...sqlcipher4, cipher: FAST }, host });
      const r = await svc.createBackup({ onProgress: (p) => void ((seen.phase = p.phase) === 'verify' && seen.verified.push(p.bytesDone)), ...(verify ? { verify } : {}) });
      return { r, calls: seen.calls, order: seen.order, verified: seen.verified, dir: svc.backupDir };
    };

    const plain = await backup(await make('plain.db', false));
    assert.equal(plain.r.success, true, plain.r.error);
    assert.equal(plain.calls.length, 1, 'checked once');
    // Not beside the engine: its first queries in a process start a compile that would take the check's cores.
    assert.deepEqual(plain.order.filter((e) => e !== 'open'), ['check', 'checked', 'open copy', 'open copy'], 'checked before the copy is opened (to apply, then to verify)');
    const size = fs.statSync(path.join(plain.dir, fs.readdirSync(plain.dir).find((n) => n.endsWith('.db'))!)).size;
    assert.equal(plain.verified[0], 0, 'verify progress starts at 0');
    assert.equal(plain.verified.at(-1), size, '... and ends at the size');
    assert.ok(plain.verified.every((n, i) => i === 0 || n >= plain.verified[i - 1]!), `... never going back: ${plain.verified.join(' ')}`);
    // At depth 'full' the check is silent and quick_check's reads are the progress, from 0 once.
    const full = await backup(await make('full.db', false), undefined, 'full');
    assert.equal(full.r.success, true, full.r.error);
    assert.deepEqual(full.calls, ['export'], 'checked once, silently (its phase still the export)');
    assert.equal(full.verified.filter((n) => n === 0).length, 1, `one pass: ${full.verified.join(' ')}`);

    // A WAL database at rest: opening its copy turns it into a rollback-journal file, rewriting page 1.
    const wal = await backup(await make('wal.db', true));
    assert.equal(wal.r.success, true, wal.r.error);
    assert.deepEqual(wal.order.filter((e) => e !== 'open'), ['check', 'checked', 'open copy', 'open copy'], 'page 1 rewritten is no reason to check every page again');
    const walDamaged = await make('wal-damaged.db', true);
    const walBytes = fs.readFileSync(walDamaged);
    walBytes[walBytes.length - 100]! ^= 1;
    fs.writeFileSync(walDamaged, walBytes);
    const walBad = await backup(walDamaged);
    assert.equal(walBad.r.errorCode, 'CORRUPT');
    assert.match(walBad.r.error ?? '', new RegExp(`page ${walBytes.length / 4096} failed its HMAC check`));
    // Page 1 as rewritten is checked by the engine, which checks every page it reads: damaged between the open that
    // rewrote it and the open that verifies, it is caught.
    const walPage1 = await backup(await make('wal-page1.db', true), (host) => {
      let copyOpens = 0;
      const open = host.open;
      host.open = async (file, o) => {
        if (file.endsWith('.tmp') && ++copyOpens === 2) {
          const b = fs.readFileSync(file);
          b[4096 - 64 + 1]! ^= 1; // page 1's stored HMAC: nothing else in the page changes
          fs.writeFileSync(file, b);
        }
        return open(file, o);
      };
    });
    assert.equal(walPage1.r.errorCode, 'CORRUPT');
    assert.match(walPage1.r.error ?? '', /page 1 is damaged/);

    // A WAL with frames to apply: they rewrite pages anywhere, so the copy is checked after.
    const live = await make('wal-live.db', true);
    const writer = await openDatabase(live, { password: 'pw', cipher: FAST });
    await writer.exec("PRAGMA wal_autocheckpoint = 0; UPDATE t SET v = randomblob(700) WHERE rowid % 7 = 0");
    const applied = await backup(live);
    await writer.close();
    assert.equal(applied.r.success, true, applied.r.error);
    assert.deepEqual(applied.order.filter((e) => e !== 'open'), ['open copy', 'open copy', 'check', 'checked'], 'checked once, after the WAL was applied');

    const damaged = await make('damaged.db', false);
    const bytes = fs.readFileSync(damaged);
    const page = bytes.length / 4096 - 1;
    bytes[page * 4096 - 100]! ^= 1;
    fs.writeFileSync(damaged, bytes);
    const bad = await backup(damaged);
    assert.equal(bad.r.success, false);
    assert.equal(bad.r.errorCode, 'CORRUPT');
    assert.match(bad.r.error ?? '', new RegExp(`page ${page} failed its HMAC check`));
    assert.deepEqual(fs.readdirSync(bad.dir).filter((n) => !n.startsWith('.')), [], 'no backup left behind');
  });

  it('a page check that fails to run (its threads gone) is no verdict: the copy is checked in-thread, and a damaged page is still caught', async () => {
    const make = async (name: string) => (await database(tempDir(`page-check-fails-${name}`), FAST, 500)).file;
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      let failures = 0;
      const host = {
        files: new NodeFileStore(),
        open: openDatabase,
        checkPages: async (): Promise<never> => {
          await new Promise((r) => setTimeout(r, 20));
          failures++;
          throw new Error('page-check thread exited');
        },
      };
      const backup = (databasePath: string) => new BackupService({ databasePath, password: 'pw', backupDir: `${databasePath}-backups`, keyProfile: { ...sqlcipher4, cipher: FAST }, host }).createBackup();
      const good = await backup(await make('good'));
      assert.equal(good.success, true, good.error);
      assert.equal(failures, 1, 'the host check was asked once and failed; not asked again');

      const damaged = await make('damaged');
      const bytes = fs.readFileSync(damaged);
      const page = bytes.length / 4096 - 1;
      bytes[page * 4096 - 100]! ^= 1;
      fs.writeFileSync(damaged, bytes);
      const bad = await backup(damaged);
      assert.equal(bad.errorCode, 'CORRUPT');
      assert.match(bad.error ?? '', new RegExp(`page ${page} failed its HMAC check`), 'found by the in-thread check');
      assert.equal(failures, 2);
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
