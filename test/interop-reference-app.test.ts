/**
 * The reference application's files, made and read the app's own way with
 * native SQLCipher (@signalapp/sqlcipher): key = PBKDF2-HMAC-SHA512(password,
 * the 32 bytes of `<db>.salt` — or `b"no salt"` for its legacy databases —,
 * 256000 iterations, 64 bytes) as `PRAGMA key = "x'<128 hex>'"`, 16 KiB pages.
 * cipherkeep's `--profile reference-app` must round-trip them.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { BackupService, referenceApp } from '../src/node.ts';
import { cli, json } from './cli-run.ts';
import { tempDir, withNative } from './helpers.ts';

const dir = tempDir('interop-reference-app');
let n = 0;
const fresh = () => {
  const d = path.join(dir, `case-${++n}`);
  fs.mkdirSync(d);
  return d;
};

/** The app's key PRAGMAs for `file`: its `.salt` if there is one, else the legacy fixed salt. */
function appKey(file: string, password: string, saltOf = file): string[] {
  const salt = fs.existsSync(`${saltOf}.salt`) ? fs.readFileSync(`${saltOf}.salt`) : Buffer.from('no salt');
  const key = crypto.pbkdf2Sync(password, salt, 256_000, 64, 'sha512').toString('hex');
  return [`key = "x'${key}'"`, 'cipher_page_size = 16384'];
}

/** What the app would see: every check native SQLCipher offers, and the rows. */
function appView(file: string, password: string, saltOf = file) {
  return withNative(file, appKey(file, password, saltOf), (db) => ({
    integrity: db.prepare('PRAGMA integrity_check').all(),
    foreignKeys: db.prepare('PRAGMA foreign_key_check').all(),
    master: db.prepare('SELECT name, sql FROM sqlite_master ORDER BY name').all(),
    rows: db.prepare('SELECT count(*) AS n, sum(amount) AS s FROM entry').get(),
  }));
}

function appWrites(file: string, password: string, rows: number): void {
  withNative(file, appKey(file, password), (db) => {
    db.pragma('journal_mode = WAL');
    db.exec(`CREATE TABLE IF NOT EXISTS account (id INTEGER PRIMARY KEY, name TEXT);
      CREATE TABLE IF NOT EXISTS entry (id INTEGER PRIMARY KEY, account INTEGER NOT NULL REFERENCES account(id), amount INTEGER);
      INSERT OR IGNORE INTO account VALUES (1, 'main');
      WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < ${rows}) INSERT INTO entry (account, amount) SELECT 1, i FROM c;`);
  });
}

/** The app's own backup: ATTACH … KEY with the database's key, sqlcipher_export, no `.salt` beside it. */
function appBackup(db: string, password: string, to: string): void {
  withNative(db, appKey(db, password), (x) => {
    const key = /x'([0-9a-f]+)'/.exec(appKey(db, password)[0]!)![1];
    x.exec(`ATTACH DATABASE '${to}' AS backup KEY "x'${key}'"`);
    x.exec('PRAGMA backup.cipher_page_size = 16384; PRAGMA backup.cipher_hmac_algorithm = HMAC_SHA512; PRAGMA backup.kdf_iter = 256000');
    x.prepare("SELECT sqlcipher_export('backup')").get();
    x.exec('DETACH DATABASE backup');
  });
}

const ok = (view: ReturnType<typeof appView>, rows: number) => {
  assert.deepEqual(view.integrity, [{ integrity_check: 'ok' }]);
  assert.deepEqual(view.foreignKeys, []);
  assert.deepEqual(view.rows, { n: rows, s: (rows * (rows + 1)) / 2 });
};

const run = (args: string[], env: Record<string, string>) => cli([...args, '--profile', 'reference-app', '--json', '--quiet'], { env });

describe('reference-app profile interop', () => {
  it('create → the app writes → backup → rotate-key → restore; the app\'s key scheme opens every file', async () => {
    const d = fresh();
    const db = path.join(d, 'ldr_user.db');
    const backups = path.join(d, 'backups');
    const created = await run(['create', '--db', db, '--password-env', 'PW'], { PW: 'app pw' });
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const salt = fs.statSync(`${db}.salt`);
    assert.equal(salt.size, 32);
    assert.equal(salt.mode & 0o777, 0o600);
    appWrites(db, 'app pw', 50); // fails unless create keyed the file the app's way
    ok(appView(db, 'app pw'), 50);

    const backedUp = await run(['backup', '--db', db, '--backup-dir', backups, '--password-env', 'PW'], { PW: 'app pw' });
    assert.equal(backedUp.code, 0, backedUp.stdout + backedUp.stderr);
    const first = json(backedUp).backupPath as string;
    assert.deepEqual(fs.readFileSync(`${first}.salt`), fs.readFileSync(`${db}.salt`));
    ok(appView(first, 'app pw'), 50);

    const rotated = await run(['rotate-key', '--db', db, '--backup-dir', backups, '--password-env', 'PW', '--new-password-env', 'NEW'], { PW: 'app pw', NEW: 'new app pw' });
    assert.equal(rotated.code, 0, rotated.stdout + rotated.stderr);
    ok(appView(db, 'new app pw'), 50);
    const second = json(rotated).backupPath as string;
    ok(appView(second, 'new app pw'), 50);

    appWrites(db, 'new app pw', 5);
    const restored = await run(['restore', second, '--db', db, '--backup-dir', backups, '--password-env', 'NEW'], { NEW: 'new app pw' });
    assert.equal(restored.code, 0, restored.stdout + restored.stderr);
    ok(appView(db, 'new app pw'), 50);
  });

  it('a raw key is refused by create under the profile, and nothing is left behind', async () => {
    const d = fresh();
    const db = path.join(d, 'x.db');
    const r = await run(['create', '--db', db, '--key-env', 'K'], { K: 'ab'.repeat(32) });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(json(r).error, /takes a password, not a raw key/);
    assert.equal(fs.existsSync(db), false);
    assert.equal(fs.existsSync(`${db}.salt`), false);
  });

  it("the app's own backups (sqlcipher_export, no .salt beside them) verify and restore with the database's .salt", async () => {
    const d = fresh();
    const db = path.join(d, 'ldr_user.db');
    const created = await run(['create', '--db', db, '--password-env', 'PW'], { PW: 'pw 1' });
    assert.equal(created.code, 0, created.stderr);
    appWrites(db, 'pw 1', 40);
    const own = path.join(d, 'ldr_backup_20260101_000000.db');
    appBackup(db, 'pw 1', own);
    assert.equal(fs.existsSync(`${own}.salt`), false);
    ok(appView(own, 'pw 1', db), 40);

    const verified = await run(['verify', own, '--db', db, '--password-env', 'PW'], { PW: 'pw 1' });
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(json(verified).notes.join('\n'), /no \.salt beside ldr_backup_20260101_000000\.db: keyed with the database's ldr_user\.db\.salt/);

    // The API says the same.
    const service = new BackupService({ databasePath: db, backupDir: d, password: 'pw 1', keyProfile: referenceApp });
    const check = await service.verifyBackup(own);
    assert.ok(check.ok && check.notes?.some((x) => /database's ldr_user\.db\.salt/.test(x)), JSON.stringify(check));

    appWrites(db, 'pw 1', 3);
    const restored = await run(['restore', own, '--db', db, '--backup-dir', d, '--password-env', 'PW'], { PW: 'pw 1' });
    assert.equal(restored.code, 0, restored.stdout + restored.stderr);
    assert.match(json(restored).notes.join('\n'), /keyed with the database's/);
    ok(appView(db, 'pw 1'), 40);
    assert.equal(fs.statSync(`${db}.salt`).size, 32, "the database's .salt stays");
  });

  it('legacy databases (no .salt: the fixed salt b"no salt") verify, back up, rotate and restore, and the app still opens them', async () => {
    const d = fresh();
    const db = path.join(d, 'ldr_legacy.db');
    const backups = path.join(d, 'backups');
    appWrites(db, 'old pw', 30); // no .salt: the app keys it with its legacy salt
    assert.equal(fs.existsSync(`${db}.salt`), false);

    const verified = await run(['verify', db, '--password-env', 'PW'], { PW: 'old pw' });
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(json(verified).notes.join('\n'), /legacy fixed salt/);

    const backedUp = await run(['backup', '--db', db, '--backup-dir', backups, '--password-env', 'PW'], { PW: 'old pw' });
    assert.equal(backedUp.code, 0, backedUp.stdout + backedUp.stderr);
    const backup = json(backedUp).backupPath as string;
    assert.equal(fs.existsSync(`${backup}.salt`), false, 'no .salt is invented');
    ok(appView(backup, 'old pw'), 30);

    const rotated = await run(['rotate-key', '--db', db, '--backup-dir', backups, '--password-env', 'PW', '--new-password-env', 'NEW'], { PW: 'old pw', NEW: 'legacy new' });
    assert.equal(rotated.code, 0, rotated.stdout + rotated.stderr);
    ok(appView(db, 'legacy new'), 30);
    assert.equal(fs.existsSync(`${db}.salt`), false);

    appWrites(db, 'legacy new', 2);
    const restored = await run(['restore', json(rotated).backupPath, '--db', db, '--backup-dir', backups, '--password-env', 'PW'], { PW: 'legacy new' });
    assert.equal(restored.code, 0, restored.stdout + restored.stderr);
    ok(appView(db, 'legacy new'), 30);
  });

  it('a lost .salt: the wrong-key failure says the legacy salt was tried; create never replaces an orphan .salt', async () => {
    const d = fresh();
    const salt = path.join(d, 'kept.salt');
    const lost = path.join(d, 'lost.db');
    const created = await run(['create', '--db', lost, '--password-env', 'PW'], { PW: 'pw' });
    assert.equal(created.code, 0, created.stderr);
    fs.renameSync(`${lost}.salt`, salt);
    const r = await run(['verify', lost, '--password-env', 'PW'], { PW: 'pw' });
    assert.equal(r.code, 4, r.stdout + r.stderr);
    assert.match(json(r).error, /no \.salt beside lost\.db: keyed with the reference app's legacy fixed salt/);

    const orphan = path.join(d, 'orphan.db');
    fs.copyFileSync(salt, `${orphan}.salt`);
    const again = await run(['create', '--db', orphan, '--password-env', 'PW'], { PW: 'pw' });
    assert.equal(again.code, 1, again.stdout + again.stderr);
    assert.match(json(again).error, /key salt file already exists/);
    assert.deepEqual(fs.readFileSync(`${orphan}.salt`), fs.readFileSync(salt), 'the orphan .salt is untouched');
    assert.equal(fs.existsSync(orphan), false);
  });

  it('a damaged .salt is reported, never replaced by the legacy salt', async () => {
    const d = fresh();
    const db = path.join(d, 'ldr_user.db');
    appWrites(db, 'pw', 3);
    fs.writeFileSync(`${db}.salt`, Buffer.alloc(7));
    const r = await run(['verify', db, '--password-env', 'PW'], { PW: 'pw' });
    assert.equal(r.code, 4, r.stdout + r.stderr);
    assert.match(json(r).error, /salt file is damaged \(7 bytes\)/);
  });
});
