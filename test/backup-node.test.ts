/** Backup behaviour that needs a real filesystem and real processes: permissions, cross-process locks, odd paths, the reference app's key profile. */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { pbkdf2Sync } from 'node:crypto';
import { BackupService, NodeFileStore, nodeBackupHost, openDatabase, referenceApp, sqlcipher4 } from '../src/node.ts';
import { fixtureCommand, nativeQuery, tempDir, withNative } from './helpers.ts';

const FAST_PROFILE = { ...sqlcipher4, cipher: { kdfIterations: 1000 } };
const mode = (p: string) => fs.statSync(p).mode & 0o777;

async function makeDb(file: string, password = 'pw') {
  const db = await openDatabase(file, { password, create: true, cipher: { kdfIterations: 1000 } });
  await db.exec("CREATE TABLE t (v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 20000) INSERT INTO t SELECT 'row ' || i FROM c");
  await db.close();
}

/** Runs the child script under the same runtime as this test (Node with tsx, or Deno). */
function child(args: string[], env: Record<string, string> = {}): { done: Promise<string>; firstLine: Promise<string> } {
  const proc = spawn(...fixtureCommand('backup-child.ts', args), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let resolveFirst: (s: string) => void;
  const firstLine = new Promise<string>((r) => (resolveFirst = r));
  proc.stdout.on('data', (d) => {
    out += d;
    if (out.includes('\n')) resolveFirst(out.split('\n')[0]!);
  });
  const done = new Promise<string>((resolve, reject) => proc.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`child exited ${code}`)))));
  return { done, firstLine };
}

describe('backups on the filesystem', () => {
  it('backup files are 0600; a backup directory cipherkeep makes is 0700, one the user made keeps its mode', async () => {
    const dir = tempDir('perm');
    await makeDb(path.join(dir, 'app.db'));
    const svc = new BackupService({ databasePath: path.join(dir, 'app.db'), password: 'pw', backupDir: path.join(dir, 'backups'), keyProfile: FAST_PROFILE });
    const r = await svc.createBackup();
    assert.equal(r.success, true, r.error);
    assert.equal(mode(r.backupPath!), 0o600);
    assert.equal(mode(path.join(dir, 'backups')), 0o700);
    fs.mkdirSync(path.join(dir, 'theirs'), { mode: 0o755 });
    fs.chmodSync(path.join(dir, 'theirs'), 0o755);
    const theirs = await new BackupService({ databasePath: path.join(dir, 'app.db'), password: 'pw', backupDir: path.join(dir, 'theirs'), keyProfile: FAST_PROFILE }).createBackup();
    assert.equal(theirs.success, true, theirs.error);
    assert.equal(mode(theirs.backupPath!), 0o600);
    assert.equal(mode(path.join(dir, 'theirs')), 0o755, 'a directory we did not make is not chmod-ed');
  });

  it('an app and a script in two processes at once make exactly one daily backup', async () => {
    const dir = tempDir('xproc');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    const backups = path.join(dir, 'backups');
    const env = { CK_PASSWORD: 'pw' };
    const runs = [child([db, backups, 'create', '30000'], env), child([db, backups, 'create', '30000'], env)];
    const here = new BackupService({ databasePath: db, password: 'pw', backupDir: backups, keyProfile: FAST_PROFILE });
    const mine = await here.createBackup();
    const theirs = (await Promise.all(runs.map((r) => r.done))).map((s) => JSON.parse(s));
    for (const r of [mine, ...theirs]) assert.equal(r.success, true, r.error);
    assert.equal(new Set([mine, ...theirs].map((r) => r.backupPath)).size, 1);
    assert.deepEqual(fs.readdirSync(backups).filter((n) => n.endsWith('.db')).length, 1);
    const generations = fs.readdirSync(`${db}.backup-lock`);
    assert.deepEqual(generations.filter((n) => !n.endsWith('.released') && !generations.includes(`${n}.released`)), [], 'every holding released');
  });

  it('50 concurrent createBackup calls from two processes make exactly one daily backup', async () => {
    const dir = tempDir('xproc50');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    const backups = path.join(dir, 'backups');
    const env = { CK_PASSWORD: 'pw', CK_CALLS: '25' };
    const runs = [child([db, backups, 'create', '60000'], env), child([db, backups, 'create', '60000'], env)];
    const results = (await Promise.all(runs.map((r) => r.done))).flatMap((s) => JSON.parse(s) as Array<{ success: boolean; backupPath: string; existing?: boolean; error?: string }>);
    assert.equal(results.length, 50);
    for (const r of results) assert.equal(r.success, true, r.error);
    assert.equal(new Set(results.map((r) => r.backupPath)).size, 1);
    assert.equal(results.filter((r) => !r.existing).length, 1, 'one call made it, 49 found it');
    assert.equal(fs.readdirSync(backups).filter((n) => n.endsWith('.db')).length, 1);
  });

  it('a lock held by another process past the timeout is a LOCK_TIMEOUT failure, and nothing is written', async () => {
    const dir = tempDir('xlock');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    const holder = child([db, path.join(dir, 'backups'), 'hold-lock', '1500']);
    assert.equal(JSON.parse(await holder.firstLine).locked, true);
    const svc = new BackupService({ databasePath: db, password: 'pw', backupDir: path.join(dir, 'backups'), keyProfile: FAST_PROFILE, lockTimeoutMs: 200 });
    const r = await svc.createBackup();
    assert.equal(r.success, false);
    assert.equal(r.errorCode, 'LOCK_TIMEOUT');
    assert.equal(fs.existsSync(path.join(dir, 'backups')), false);
    await holder.done;
    assert.equal((await svc.createBackup()).success, true, 'works once the other process lets go');
  });

  it('a lock file left by a dead process is taken over', async () => {
    const dir = tempDir('stale');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    const os = await import('node:os');
    fs.mkdirSync(`${db}.backup-lock`);
    fs.writeFileSync(path.join(`${db}.backup-lock`, '7'), JSON.stringify({ pid: 2 ** 22 + 12345, host: os.hostname() }));
    const svc = new BackupService({ databasePath: db, password: 'pw', backupDir: path.join(dir, 'b'), keyProfile: FAST_PROFILE, lockTimeoutMs: 1000 });
    assert.equal((await svc.createBackup()).success, true);
  });

  it('unicode, spaces, quotes and long names in the database and backup paths', async () => {
    const dir = tempDir('names');
    const sub = path.join(dir, `dossier "d'été" ${'ü'.repeat(40)}`);
    fs.mkdirSync(sub);
    const db = path.join(sub, `données ; DROP TABLE t; -- '.db`);
    await makeDb(db);
    const backups = path.join(sub, `backups ${'名'.repeat(30)}`);
    const svc = new BackupService({ databasePath: db, password: 'pw', backupDir: backups, keyProfile: FAST_PROFILE, prefix: 'Sauvegarde-2026.v1' });
    const r = await svc.createBackup();
    assert.equal(r.success, true, r.error);
    assert.match(path.basename(r.backupPath!), /^Sauvegarde-2026\.v1_\d{8}_\d{6}\.db$/);
    assert.equal((await svc.verifyBackup(r.backupPath!)).ok, true);
    assert.equal((await svc.restoreBackup(r.backupPath!)).success, true);
  });

  it('a missing database and an unwritable backup location fail cleanly', async () => {
    const dir = tempDir('missing');
    const gone = new BackupService({ databasePath: path.join(dir, 'nope.db'), password: 'pw', backupDir: path.join(dir, 'b'), keyProfile: FAST_PROFILE });
    const r = await gone.createBackup();
    assert.equal(r.success, false);
    assert.equal(r.errorCode, 'NOT_FOUND');
    await makeDb(path.join(dir, 'app.db'));
    fs.writeFileSync(path.join(dir, 'a-file'), 'not a directory');
    const blocked = new BackupService({ databasePath: path.join(dir, 'app.db'), password: 'pw', backupDir: path.join(dir, 'a-file'), keyProfile: FAST_PROFILE });
    const b = await blocked.createBackup();
    assert.equal(b.success, false);
    assert.match(b.error!, /EEXIST|ENOTDIR|not a directory/i);
    assert.equal(fs.readFileSync(path.join(dir, 'a-file'), 'utf8'), 'not a directory');
  });

  it('a copy that never reaches the disk (its write-back fails) fails the backup, and leaves no backup behind', async () => {
    const dir = tempDir('writeback');
    await makeDb(path.join(dir, 'app.db'));
    // The host's kernel copy returns before the disk has the bytes; the failure comes with `durable`, as EIO would.
    class LostOnTheWay extends NodeFileStore {
      override async copyPrefix(from: string, to: string, length: number) {
        const { durable } = await super.copyPrefix(from, to, length);
        return { durable: durable.then(() => Promise.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }))) };
      }
    }
    const backups = path.join(dir, 'backups');
    const svc = new BackupService({ databasePath: path.join(dir, 'app.db'), password: 'pw', backupDir: backups, keyProfile: FAST_PROFILE, host: { ...nodeBackupHost(), files: new LostOnTheWay() } });
    const r = await svc.createBackup();
    assert.equal(r.success, false, 'a backup whose bytes did not reach the disk is not a backup');
    assert.match(r.error!, /EIO/);
    assert.deepEqual(fs.readdirSync(backups).filter((n) => !n.startsWith('.')), [], 'nothing left in the backup directory');
  });

  it('the copy is on disk before it is renamed into place', async () => {
    const dir = tempDir('writeback-order');
    await makeDb(path.join(dir, 'app.db'));
    const events: string[] = [];
    // A slow disk: the write-back ends 300 ms after the kernel's copy, well after the copy is checked.
    class SlowDisk extends NodeFileStore {
      override async copyPrefix(from: string, to: string, length: number) {
        const { durable } = await super.copyPrefix(from, to, length);
        return { durable: durable.then(() => new Promise<void>((r) => setTimeout(r, 300))).then(() => void events.push('on disk')) };
      }
      override async rename(from: string, to: string) {
        events.push(`rename to ${path.basename(to)}`);
        return super.rename(from, to);
      }
    }
    const svc = new BackupService({ databasePath: path.join(dir, 'app.db'), password: 'pw', backupDir: path.join(dir, 'backups'), keyProfile: FAST_PROFILE, host: { ...nodeBackupHost(), files: new SlowDisk() } });
    const r = await svc.createBackup();
    assert.equal(r.success, true, r.error);
    assert.deepEqual(events, ['on disk', `rename to ${path.basename(r.backupPath!)}`]);
  });

  it('the reference application profile: salt file, 16 KiB pages, WAL; backups carry the salt and open natively', async () => {
    const dir = tempDir('refapp');
    const db = path.join(dir, 'ldr_user.db');
    const salt = crypto.getRandomValues(new Uint8Array(32));
    fs.writeFileSync(`${db}.salt`, salt);
    const hex = pbkdf2Sync('user password', salt, 256_000, 64, 'sha512').toString('hex');
    const pragmas = [`key = "x'${hex}'"`, 'cipher_page_size = 16384'];
    withNative(db, pragmas, (n) => {
      n.pragma('journal_mode = WAL');
      n.exec("CREATE TABLE research (id INTEGER PRIMARY KEY, q TEXT); INSERT INTO research (q) VALUES ('why'), ('how')");
    });
    const svc = new BackupService({ databasePath: db, password: 'user password', backupDir: path.join(dir, 'backups'), keyProfile: referenceApp, prefix: 'ldr_backup' });
    const r = await svc.createBackup();
    assert.equal(r.success, true, r.error);
    assert.equal(mode(`${r.backupPath}.salt`), 0o600);
    assert.deepEqual(fs.readFileSync(`${r.backupPath}.salt`), Buffer.from(salt));
    assert.deepEqual(nativeQuery(r.backupPath!, pragmas, 'SELECT q FROM research ORDER BY id'), [{ q: 'why' }, { q: 'how' }]);
    // Restore brings the salt back even if the live one is lost.
    fs.rmSync(`${db}.salt`);
    const restored = await svc.restoreBackup(r.backupPath!);
    assert.equal(restored.success, true, restored.error);
    assert.deepEqual(fs.readFileSync(`${db}.salt`), Buffer.from(salt));
    assert.deepEqual(nativeQuery(db, pragmas, 'SELECT count(*) AS n FROM research'), [{ n: 2 }]);
    // Changing the password keeps the salt file and re-derives the key from it.
    const changed = await svc.changePassword({ password: 'new password' });
    assert.equal(changed.success, true, changed.error);
    const newHex = pbkdf2Sync('new password', salt, 256_000, 64, 'sha512').toString('hex');
    assert.deepEqual(nativeQuery(db, [`key = "x'${newHex}'"`, 'cipher_page_size = 16384'], 'SELECT count(*) AS n FROM research'), [{ n: 2 }]);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'backups')).filter((n) => !n.startsWith('.')).sort(), [path.basename(changed.backupPath!), `${path.basename(changed.backupPath!)}.salt`]);
  });

  it('no log line or error message carries the password or a key', async () => {
    const dir = tempDir('secrets');
    const password = 'Tr0ub4dor&3-very-secret';
    const db = path.join(dir, 'app.db');
    await makeDb(db, password);
    const lines: string[] = [];
    const logger = { debug: (m: string) => void lines.push(m), info: (m: string) => void lines.push(m), warn: (m: string) => void lines.push(m) };
    const svc = new BackupService({ databasePath: db, password, backupDir: path.join(dir, 'b'), keyProfile: FAST_PROFILE, logger, maxBackups: 2 });
    const results: unknown[] = [await svc.createBackup(), await svc.createBackup({ force: true }), await svc.changePassword({ password: `${password}-2` })];
    results.push(await new BackupService({ databasePath: db, password: 'wrong', backupDir: path.join(dir, 'b'), keyProfile: FAST_PROFILE, logger }).createBackup());
    results.push(await svc.restoreBackup(path.join(dir, 'nope.db')));
    const text = JSON.stringify(results) + lines.join('\n') + fs.readdirSync(path.join(dir, 'b')).join(' ');
    assert.ok(lines.length > 3);
    assert.equal(text.includes('Tr0ub4dor'), false);
    assert.doesNotMatch(text, /x'[0-9a-f]{16,}/i);
  });
});
