/**
 * Hostile and odd situations a backup service meets: two databases in one
 * backup directory, links and loops among the backups, shared directories,
 * root replacing an app's file, streams that never end or never yield.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { BackupService, openDatabase, sqlcipher4 } from '../src/node.ts';
import { tempDir } from './helpers.ts';

const FAST = { ...sqlcipher4, cipher: { kdfIterations: 1000 } };
const here = import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname);
const root = process.getuid?.() === 0;

async function makeDb(file: string, password = 'pw', rows = 200) {
  const db = await openDatabase(file, { password, create: true, cipher: FAST.cipher });
  await db.exec(`CREATE TABLE t (v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < ${rows}) INSERT INTO t SELECT hex(randomblob(50)) FROM c`);
  await db.close();
}

const service = (db: string, backupDir: string, extra: Record<string, unknown> = {}) =>
  new BackupService({ databasePath: db, backupDir, password: 'pw', keyProfile: FAST, ...extra });

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = 'Deno' in globalThis ? ['run', '-A', path.join(here, '..', 'bin', 'cipherkeep.mjs'), ...args] : [path.join(here, '..', 'bin', 'cipherkeep.mjs'), ...args];
  return new Promise((resolve) =>
    execFile(process.execPath, argv, { env: { ...process.env, CIPHERKEEP_PASSWORD: 'pw', ...env } }, (e, stdout, stderr) =>
      resolve({ code: e ? (e.code as number) : 0, stdout, stderr })));
}

describe('a backup belongs to one database', () => {
  it('two databases sharing a backup directory and prefix never see, return or delete each other\'s backups', async () => {
    const dir = tempDir('shared');
    const [one, two] = [path.join(dir, 'one.db'), path.join(dir, 'two.db')];
    await makeDb(one);
    await makeDb(two);
    const backups = path.join(dir, 'backups');
    const first = await service(one, backups).createBackup();
    assert.equal(first.success, true, first.error);
    const second = await service(two, backups).createBackup();
    assert.equal(second.success, true, second.error);
    assert.notEqual(second.backupPath, first.backupPath, "two's daily backup is its own, not one's");
    assert.equal(second.existing, undefined);
    const forced = await service(two, backups).createBackup({ force: true });
    assert.equal(forced.success, true);
    assert.ok(fs.existsSync(first.backupPath!), "two's retention (maxBackups 1) left one's only backup alone");
    assert.deepEqual((await service(one, backups).listBackups()).map((b) => b.path), [first.backupPath]);
    assert.deepEqual((await service(two, backups).listBackups()).map((b) => b.path), [forced.backupPath]);
  });

  it('restore refuses a backup of another database unless told; import refuses one', async () => {
    const dir = tempDir('foreign');
    const [mine, other] = [path.join(dir, 'app.db'), path.join(dir, 'other.db')];
    await makeDb(mine);
    await makeDb(other);
    const foreign = await service(other, path.join(dir, 'other-backups')).createBackup();
    const svc = service(mine, path.join(dir, 'backups'));
    const before = fs.readFileSync(mine);
    const refused = await svc.restoreBackup(foreign.backupPath!);
    assert.deepEqual([refused.success, refused.errorCode], [false, 'OTHER_DATABASE']);
    assert.deepEqual(fs.readFileSync(mine), before, 'nothing changed');
    const imported = await svc.importBackup((async function* () { yield new Uint8Array(fs.readFileSync(foreign.backupPath!)); })());
    assert.deepEqual([imported.success, imported.errorCode], [false, 'OTHER_DATABASE']);
    assert.deepEqual(await svc.listBackups(), []);
    const allowed = await svc.restoreBackup(foreign.backupPath!, { allowOtherDatabase: true });
    assert.equal(allowed.success, true, allowed.error);
  });

  it("today's damaged backup is not trusted: a fresh one is made", async () => {
    const dir = tempDir('damaged');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    const svc = service(db, path.join(dir, 'backups'));
    const first = await svc.createBackup();
    const bytes = fs.readFileSync(first.backupPath!);
    bytes[bytes.length - 100]! ^= 0x01;
    fs.writeFileSync(first.backupPath!, bytes);
    const again = await svc.createBackup();
    assert.equal(again.success, true, again.error);
    assert.notEqual(again.existing, true);
    assert.notEqual(again.backupPath, first.backupPath);
    assert.equal((await svc.verifyBackup(again.backupPath!)).ok, true);
    assert.deepEqual((await svc.listBackups()).map((b) => b.path), [again.backupPath], 'retention removed the damaged one');
  });

  it('damage on page 1 is corruption, not a wrong password: the key checks out on every other page', async () => {
    const dir = tempDir('page1');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    const svc = service(db, path.join(dir, 'backups'));
    const made = await svc.createBackup();
    const bytes = fs.readFileSync(made.backupPath!);
    bytes[200]! ^= 0xff; // inside page 1's ciphertext, past the salt
    const damaged = path.join(dir, 'damaged.db');
    fs.writeFileSync(damaged, bytes);
    const check = await svc.verifyBackup(damaged);
    assert.deepEqual([check.ok, !check.ok && check.reason], [false, 'corrupt'], JSON.stringify(check));
    assert.match(!check.ok ? check.detail : '', /page 1 is damaged/);
    const wrong = await new BackupService({ databasePath: db, backupDir: path.join(dir, 'backups'), password: 'not it', keyProfile: FAST }).verifyBackup(made.backupPath!);
    assert.deepEqual([wrong.ok, !wrong.ok && wrong.reason], [false, 'wrong-key'], 'a wrong password is still wrong-key');
    const cliRun = await cli(['verify', damaged, '--kdf-iter', '1000']);
    assert.equal(cliRun.code, 3, 'the CLI says verification failed, not wrong password');
  });

  it('the CLI: a missing database is an error even beside a backup of today; rotate-key of another database leaves these backups alone', async () => {
    const dir = tempDir('cliid');
    const [app, other] = [path.join(dir, 'app.db'), path.join(dir, 'other.db')];
    await makeDb(app);
    await makeDb(other);
    const backups = path.join(dir, 'backups');
    const common = ['--backup-dir', backups, '--kdf-iter', '1000', '--max-backups', '2'];
    assert.equal((await cli(['backup', '--db', app, ...common])).code, 0);
    const missing = await cli(['backup', '--db', path.join(dir, 'missing.db'), ...common, '--json']);
    assert.notEqual(missing.code, 0, missing.stdout);
    assert.equal(JSON.parse(missing.stdout).errorCode, 'NOT_FOUND');
    const appBackups = fs.readdirSync(backups).filter((n) => n.endsWith('.db'));
    const rotated = await cli(['rotate-key', '--db', other, ...common, '--new-password-env', 'NEW_PW'], { NEW_PW: 'new pw' });
    assert.equal(rotated.code, 0, rotated.stderr);
    for (const n of appBackups) assert.ok(fs.existsSync(path.join(backups, n)), `${n} of app.db survived other.db's rotate-key`);
  });
});

describe('odd and hostile backup directories', () => {
  it('links named like backups, and link loops, are skipped (and logged), never returned or streamed', async () => {
    const dir = tempDir('links');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    const backups = path.join(dir, 'backups');
    fs.mkdirSync(backups);
    const victim = path.join(dir, 'victim.txt');
    fs.writeFileSync(victim, 'x'.repeat(36));
    const today = new Date().toISOString().slice(0, 10).replace(/-/g, '');
    fs.symlinkSync(victim, path.join(backups, `backup_${today}_000000.db`));
    fs.symlinkSync(path.join(backups, 'loop-b'), path.join(backups, 'backup_20200101_000000.db'));
    fs.symlinkSync(path.join(backups, 'backup_20200101_000000.db'), path.join(backups, 'loop-b'));
    const warnings: string[] = [];
    const svc = service(db, backups, { logger: { debug() {}, info() {}, warn: (m: string) => warnings.push(m) } });
    assert.deepEqual(await svc.listBackups(), []);
    const r = await svc.createBackup();
    assert.equal(r.success, true, r.error);
    assert.notEqual(r.existing, true, 'the link was not taken for today\'s backup');
    assert.ok(warnings.some((w) => w.includes('symbolic link')), warnings.join('\n'));
    await assert.rejects(async () => {
      for await (const _ of svc.readBackup(path.join(backups, `backup_${today}_000000.db`))) void _;
    }, /not a backup of this service/);
    assert.equal(fs.readFileSync(victim, 'utf8'), 'x'.repeat(36));
  });

  it('a shared directory reached through a link keeps its mode; one writable by all without the sticky bit is refused', async () => {
    const dir = tempDir('sharedir');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    const sticky = path.join(dir, 'sticky');
    fs.mkdirSync(sticky);
    fs.chmodSync(sticky, 0o1777);
    fs.symlinkSync(sticky, path.join(dir, 'via-link'));
    const ok = await service(db, path.join(dir, 'via-link')).createBackup();
    assert.equal(ok.success, true, ok.error);
    assert.equal(fs.statSync(sticky).mode & 0o7777, 0o1777, 'not chmod-ed to 0700');
    const open = path.join(dir, 'open');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o777);
    const refused = await service(db, open).createBackup();
    assert.deepEqual([refused.success, refused.errorCode], [false, 'UNSAFE_DIRECTORY']);
    assert.deepEqual(fs.readdirSync(open), []);
  });

  it('a link planted under the very name a backup is staged under is no obstacle (no raw EEXIST)', async () => {
    const dir = tempDir('planted');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    const backups = path.join(dir, 'backups');
    fs.mkdirSync(backups);
    // The first holding of a fresh directory's lock is generation 1: the staged name is predictable.
    fs.symlinkSync(path.join(dir, 'nowhere'), path.join(backups, 'backup_20260301_100000.db.1.tmp'));
    const r = await service(db, backups, { clock: () => new Date('2026-03-01T10:00:00Z') }).createBackup();
    assert.equal(r.success, true, `${r.errorCode}: ${r.error}`);
    assert.equal(fs.existsSync(path.join(dir, 'nowhere')), false, 'nothing written through the link');
  });

  it('two restores in the same second keep both earlier databases', async () => {
    const dir = tempDir('restores');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    const clock = () => new Date('2026-03-01T10:00:00Z');
    const svc = service(db, path.join(dir, 'backups'), { clock });
    const b = await svc.createBackup();
    for (let i = 0; i < 2; i++) assert.equal((await svc.restoreBackup(b.backupPath!)).success, true);
    assert.equal(fs.readdirSync(dir).filter((n) => n.includes('.pre-restore-')).length, 2);
  });

  it('restore and password change keep the owner, group and mode of the file they replace (root)', async (t) => {
    if (!root) return t.skip('needs root to give a file to another user');
    const dir = tempDir('owner');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    fs.chownSync(db, 1234, 2345);
    fs.chmodSync(db, 0o640);
    const svc = service(db, path.join(dir, 'backups'));
    const b = await svc.createBackup();
    assert.equal((await svc.restoreBackup(b.backupPath!)).success, true);
    const afterRestore = fs.statSync(db);
    assert.deepEqual([afterRestore.uid, afterRestore.gid, afterRestore.mode & 0o777], [1234, 2345, 0o640]);
    assert.equal((await svc.changePassword({ password: 'pw2' })).success, true);
    const afterChange = fs.statSync(db);
    assert.deepEqual([afterChange.uid, afterChange.gid, afterChange.mode & 0o777], [1234, 2345, 0o640]);
  });

  it('purgeAndRefresh removes dead .tmp files even when the database is missing', async () => {
    const dir = tempDir('purgetmp');
    const backups = path.join(dir, 'backups');
    fs.mkdirSync(backups);
    for (const n of ['backup_20260101_000000.db.tmp', 'backup_20260101_000001.db.7.tmp', 'backup_20260101_000002.db.9.tmp-wal']) fs.writeFileSync(path.join(backups, n), 'x');
    const r = await service(path.join(dir, 'missing.db'), backups).purgeAndRefresh();
    assert.equal(r.errorCode, 'NOT_FOUND');
    assert.deepEqual(fs.readdirSync(backups).filter((n) => n.includes('.tmp')), []);
  });
});

describe('sizes', () => {
  it('a database padded far past its last page (sparse) is copied, and space asked for, by what it holds', async (t) => {
    const dir = tempDir('sparse');
    const db = path.join(dir, 'app.db');
    await makeDb(db, 'pw', 2000);
    const holds = fs.statSync(db).size;
    fs.truncateSync(db, 4 * 1024 ** 3); // 4 GiB, all but the first pages a hole
    const backups = path.join(dir, 'backups');
    fs.mkdirSync(backups);
    if (root) execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${4 * holds + (1 << 20)}`, 'tmpfs', backups]);
    try {
      const r = await service(db, backups).createBackup();
      assert.equal(r.success, true, r.error);
      assert.equal(r.sizeBytes, holds, 'the backup is the database, not its padding');
      assert.equal((await service(db, backups).verifyBackup(r.backupPath!)).ok, true);
    } finally {
      if (root) execFileSync('umount', [backups]);
    }
    if (!root) t.diagnostic('without root the free-space half ran against this disk, not a small tmpfs');
  });

  it('a database padded with written bytes (not sparse) is copied whole while the key is derived, then cut to what it holds', async () => {
    const dir = tempDir('padded');
    const db = path.join(dir, 'app.db');
    await makeDb(db, 'pw', 2000);
    const holds = fs.statSync(db).size;
    fs.appendFileSync(db, new Uint8Array(3 << 20)); // real zeros on disk: the file's blocks cover its size
    assert.ok(fs.statSync(db).blocks * 512 >= fs.statSync(db).size, 'written, not a hole');
    const backups = path.join(dir, 'backups');
    const r = await service(db, backups).createBackup();
    assert.equal(r.success, true, r.error);
    assert.equal(r.sizeBytes, holds, 'the backup is the database, not its padding');
    assert.equal(fs.statSync(r.backupPath!).size, holds);
    assert.equal((await service(db, backups).verifyBackup(r.backupPath!)).ok, true);
  });

  it('import stops on free space as bytes arrive, before the disk is full (root: a real tmpfs)', async (t) => {
    if (!root) return t.skip('needs root for a small tmpfs');
    const dir = tempDir('importfull');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    const backups = path.join(dir, 'backups');
    fs.mkdirSync(backups);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', backups]);
    try {
      let leastFree = Infinity;
      const r = await service(db, backups).importBackup((async function* () {
        for (;;) yield new Uint8Array(1 << 20);
      })(), { onProgress: () => void (leastFree = Math.min(leastFree, Number(fs.statfsSync(backups).bavail) * Number(fs.statfsSync(backups).bsize))) });
      assert.deepEqual([r.success, r.errorCode], [false, 'STORAGE_FULL']);
      assert.ok(leastFree > 4 << 20, `stopped with room to spare (least free: ${leastFree} bytes), not at a full disk`);
      assert.deepEqual(fs.readdirSync(backups).filter((n) => !n.startsWith('.')), [], 'nothing left');
    } finally {
      execFileSync('umount', [backups]);
    }
  });
});

describe('import is bounded', () => {
  it('a stream that never yields times out, one cancelled stops, and the lock is free afterwards', async () => {
    const dir = tempDir('import');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    const svc = service(db, path.join(dir, 'backups'), { lockTimeoutMs: 2000 });
    const stalled = await svc.importBackup((async function* () {
      yield new Uint8Array(4096);
      await new Promise(() => {}); // never yields again
    })(), { stallTimeoutMs: 300 });
    assert.deepEqual([stalled.success, stalled.errorCode], [false, 'ABORTED']);
    const controller = new AbortController();
    const endless = svc.importBackup((async function* () {
      for (;;) yield new Uint8Array(1 << 16);
    })(), { signal: controller.signal });
    setTimeout(() => controller.abort(), 200);
    const cancelled = await endless;
    assert.deepEqual([cancelled.success, cancelled.errorCode], [false, 'ABORTED']);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'backups')).filter((n) => !n.startsWith('.')), [], 'nothing left');
    assert.equal((await svc.createBackup()).success, true, 'the lock was let go');
  });
});
