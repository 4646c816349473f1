/**
 * Backing up a database another process is using: real native SQLCipher in
 * a child process holds it open (and writes), while cipherkeep backs it up
 * from this one. The database is only ever read by the backup paths.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { BackupService, referenceApp, sqlcipher4 } from '../src/node.ts';
import { sha256, tempDir } from './helpers.ts';
import { cipherkeepApp, ledger, nativeApp, PASSWORD, TOTAL } from './native-app.ts';

const here = import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname);

/** The CLI under this test's runtime; resolves with its exit code. */
const runCli = (args: string[]) => new Promise<number>((resolve) =>
  execFile(process.execPath, [...('Deno' in globalThis ? ['run', '-A'] : []), path.join(here, '..', 'bin', 'cipherkeep.mjs'), ...args],
    { env: { ...process.env, CIPHERKEEP_PASSWORD: PASSWORD } }, (e) => resolve(e ? (e.code as number) : 0)));

const sides = (db: string) => [db, `${db}-wal`, `${db}-shm`, `${db}-journal`];
const hashes = (db: string) => sides(db).map((f) => (fs.existsSync(f) ? sha256(fs.readFileSync(f)) : null));

describe('a database another process is using', { timeout: 300_000 }, () => {
  for (const mode of ['wal', 'delete'] as const) {
    for (const profile of [sqlcipher4, referenceApp]) {
      it(`${mode}, ${profile.name}: backups while a native writer commits; nothing lost, every backup consistent`, { timeout: 120_000 }, async () => {
        const dir = tempDir('live');
        const db = path.join(dir, 'app.db');
        const app = nativeApp(db, mode, profile, 'write');
        await app.ready;
        const svc = new BackupService({ databasePath: db, password: PASSWORD, backupDir: path.join(dir, 'backups'), keyProfile: profile, maxBackups: 10 });
        const results = [];
        for (let i = 0; i < 4; i++) {
          results.push(await svc.createBackup({ force: true }));
          await new Promise((r) => setTimeout(r, 50));
        }
        const { commits, errors } = await app.stop();
        assert.deepEqual(errors, [], 'the app never saw an error');
        assert.ok(commits > 20, `the app kept committing (${commits})`);
        for (const r of results) {
          assert.equal(r.success, true, r.error);
          const copy = await ledger(r.backupPath!, profile);
          assert.deepEqual({ ok: copy.ok, total: copy.total, gapless: copy.gapless }, { ok: true, total: TOTAL, gapless: true }, `${path.basename(r.backupPath!)} is a committed state`);
          assert.equal((await svc.verifyBackup(r.backupPath!)).ok, true);
        }
        const after = await ledger(db, profile);
        assert.deepEqual(after, { ok: true, total: TOTAL, rows: commits, gapless: true }, 'the database opens natively with every acknowledged commit');
      });
    }
  }

  for (const mode of ['wal', 'delete'] as const) {
    it(`${mode}: two cipherkeep processes — the app through the library, a script through the CLI — are the same case`, { timeout: 120_000 }, async () => {
      const dir = tempDir('twock');
      const db = path.join(dir, 'app.db');
      const app = cipherkeepApp(db, mode);
      await app.ready;
      const backups = path.join(dir, 'backups');
      for (let i = 0; i < 3; i++) {
        const r = await runCli(['backup', '--db', db, '--backup-dir', backups, '--force', '--max-backups', '5', '--quiet']);
        assert.equal(r, 0, 'the CLI backed up');
      }
      const { commits, errors } = await app.stop();
      assert.deepEqual(errors, [], 'the app never saw an error');
      assert.ok(commits > 10, `the app kept committing (${commits})`);
      const files = fs.readdirSync(backups).filter((n) => n.endsWith('.db'));
      assert.equal(files.length, 3);
      for (const f of files) {
        const copy = await ledger(path.join(backups, f), sqlcipher4);
        assert.deepEqual({ ok: copy.ok, total: copy.total, gapless: copy.gapless }, { ok: true, total: TOTAL, gapless: true }, `${f} is a committed state`);
      }
      assert.deepEqual(await ledger(db, sqlcipher4), { ok: true, total: TOTAL, rows: commits, gapless: true });
    });
  }

  it('verifyBackup, createBackup and the CLI verify leave a live WAL database, its -wal and -shm byte for byte unchanged', { timeout: 60_000 }, async () => {
    const dir = tempDir('untouched');
    const db = path.join(dir, 'app.db');
    const app = nativeApp(db, 'wal', sqlcipher4, 'hold');
    await app.ready;
    const before = hashes(db);
    assert.ok(before[1] && before[2], 'the app has a -wal and a -shm');
    const svc = new BackupService({ databasePath: db, password: PASSWORD, backupDir: path.join(dir, 'backups') });
    assert.equal((await svc.verifyBackup(db) as { reason?: string }).reason, 'live', 'a live database is not taken for a backup');
    const r = await svc.createBackup();
    assert.equal(r.success, true, r.error);
    const cli = await runCli(['verify', db, '--quiet']);
    assert.equal(cli, 3, 'the CLI says verification failed');
    assert.deepEqual(hashes(db), before, 'database, -wal, -shm, -journal unchanged');
    const { errors } = await app.stop();
    assert.deepEqual(errors, []);
    const copy = await ledger(r.backupPath!, sqlcipher4);
    assert.equal(copy.rows, 200, 'the backup holds the frames still in the WAL');
  });

  it('changePassword and restoreBackup refuse with IN_USE while another process has the database open, and change nothing', { timeout: 60_000 }, async () => {
    const dir = tempDir('inuse');
    const db = path.join(dir, 'app.db');
    for (const mode of ['wal', 'delete'] as const) {
      fs.rmSync(db, { force: true });
      const app = nativeApp(db, mode, sqlcipher4, 'hold');
      await app.ready;
      const svc = new BackupService({ databasePath: db, password: PASSWORD, backupDir: path.join(dir, `b-${mode}`) });
      const backup = await svc.createBackup();
      assert.equal(backup.success, true, backup.error);
      const before = hashes(db);
      const change = await svc.changePassword({ password: 'another pw' });
      assert.equal(change.errorCode, 'IN_USE', `${mode}: ${change.error}`);
      const restore = await svc.restoreBackup(backup.backupPath!);
      assert.equal(restore.errorCode, 'IN_USE', `${mode}: ${restore.error}`);
      assert.deepEqual(hashes(db), before, `${mode}: nothing changed`);
      assert.equal((await svc.listBackups()).length, 1, 'the backup is still there');
      assert.deepEqual((await app.stop()).errors, []);
      // Closed everywhere, the same calls go through.
      assert.equal((await svc.restoreBackup(backup.backupPath!)).success, true);
    }
  });
});

describe('read-only media', () => {
  it('a backup on a read-only filesystem verifies (root: a tmpfs remounted read-only; others: a 0400 file in a 0500 directory)', { timeout: 60_000 }, async () => {
    const dir = tempDir('ro');
    const db = path.join(dir, 'app.db');
    const app = nativeApp(db, 'wal', sqlcipher4, 'hold');
    await app.ready;
    const made = await new BackupService({ databasePath: db, password: PASSWORD, backupDir: path.join(dir, 'backups') }).createBackup();
    await app.stop();
    assert.equal(made.success, true, made.error);
    const media = path.join(dir, 'media');
    fs.mkdirSync(media);
    const root = process.getuid?.() === 0;
    const copy = path.join(media, path.basename(made.backupPath!));
    if (root) execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', media]);
    try {
      fs.copyFileSync(made.backupPath!, copy);
      if (root) execFileSync('mount', ['-o', 'remount,ro', media]);
      else {
        fs.chmodSync(copy, 0o400);
        fs.chmodSync(media, 0o500);
      }
      const before = sha256(fs.readFileSync(copy));
      const check = await new BackupService({ databasePath: db, password: PASSWORD, backupDir: media }).verifyBackup(copy);
      assert.equal(check.ok, true, JSON.stringify(check));
      assert.equal(sha256(fs.readFileSync(copy)), before);
      assert.deepEqual(fs.readdirSync(media), [path.basename(copy)], 'nothing created beside it');
    } finally {
      if (root) execFileSync('umount', [media]);
      else fs.chmodSync(media, 0o700);
    }
  });
});
