/**
 * Every kind of SQLCipher file people have, made by native SQLCipher
 * (@signalapp/sqlcipher), through verify, backup, rotate-key and restore —
 * from the CLI and from the API — with each result checked natively: row
 * counts, sqlite_master, integrity_check, foreign_key_check.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { BackupService, MissingModuleError, openDatabase, sqlcipher4, type CipherSettings, type Database, type KeyMaterial } from '../src/node.ts';
import { cli, json } from './cli-run.ts';
import { tempDir, withNative } from './helpers.ts';

const HERE = import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname);
const dir = tempDir('interop-breadth');
let n = 0;
const fresh = (label: string) => {
  const d = path.join(dir, `${label}-${++n}`);
  fs.mkdirSync(d);
  return d;
};
const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

type Secret = { password: string } | { keyHex: string };
const nativeKey = (s: Secret) => ('password' in s ? `key = ${quote(s.password)}` : `key = "x'${s.keyHex}'"`);
const apiKey = (s: Secret): KeyMaterial => ('password' in s ? { password: s.password } : { key: Buffer.from(s.keyHex, 'hex') });
/** The CLI's environment and flags for a secret: a password, or a raw key through --key-env. */
const cliKey = (s: Secret, fresh = false) => ('password' in s
  ? { env: { [fresh ? 'CK_NEW' : 'CK_PW']: s.password }, args: [fresh ? '--new-password-env' : '--password-env', fresh ? 'CK_NEW' : 'CK_PW'] }
  : { env: { [fresh ? 'CK_NEWKEY' : 'CK_KEY']: s.keyHex }, args: [fresh ? '--new-key-env' : '--key-env', fresh ? 'CK_NEWKEY' : 'CK_KEY'] });

interface Kind {
  name: string;
  /** Native PRAGMAs after the key that select this format. */
  native: string[];
  cipher: CipherSettings;
  cliArgs: string[];
  secret: () => Secret;
  /** Extra content (beyond the common tables), run natively. */
  fill?: (db: import('@signalapp/sqlcipher').default) => void;
  /** Checks through the engine itself, on the restored database. */
  direct?: (db: Database) => Promise<void>;
  /** What verification must note. */
  notes?: RegExp[];
}

const SALT = crypto.randomBytes(16);
const FTS_DUMP = fs.readFileSync(path.join(HERE, 'fixtures/fts-rtree.sql'), 'utf8');

const KINDS: Kind[] = [
  {
    name: 'SQLCipher 3 (cipher_compatibility = 3)', native: ['cipher_compatibility = 3'], cipher: { compatibility: 3 }, cliArgs: ['--compat', '3'],
    secret: () => ({ password: `v3 pw ${n}` }),
    // Everything a rotate-key must carry over: it rewrites a v3 file table by table (the engine cannot rekey it in place).
    fill: (db) => db.exec(`CREATE TABLE plain (v);
      WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 50) INSERT INTO plain SELECT 'row ' || i FROM c;
      DELETE FROM plain WHERE rowid % 7 = 0;
      CREATE TABLE counted (id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT UNIQUE);
      INSERT INTO counted (label) VALUES ('a'), ('b'), ('c'); DELETE FROM counted WHERE label = 'c';
      CREATE INDEX pet_name ON pet (name);
      CREATE VIEW pets_of_ada AS SELECT pet.name FROM pet JOIN owner ON owner.id = pet.owner WHERE owner.name = 'ada';
      CREATE TRIGGER count_pets AFTER INSERT ON pet BEGIN INSERT INTO counted (label) VALUES (new.name); END;
      CREATE VIRTUAL TABLE search USING fts5(body); INSERT INTO search SELECT v FROM plain;
      PRAGMA user_version = 42; PRAGMA application_id = 0x0c1f4e21;`),
  },
  {
    name: 'plaintext header (32 bytes) with an explicit cipher_salt',
    native: ['cipher_plaintext_header_size = 32', `cipher_salt = "x'${hex(SALT)}'"`],
    cipher: { plaintextHeaderSize: 32, salt: SALT }, cliArgs: ['--plaintext-header', '32', '--salt', hex(SALT)],
    secret: () => ({ password: `ph pw ${n}` }),
  },
  {
    name: 'FTS4, FTS3 and R-Tree tables (modules the engine lacks)', native: [], cipher: {}, cliArgs: [],
    secret: () => ({ password: `fts pw ${n}` }),
    fill: (db) => {
      db.exec(FTS_DUMP.replace(/^(PRAGMA foreign_keys=OFF;|BEGIN TRANSACTION;|COMMIT;)$/gm, ''));
      db.exec("CREATE VIRTUAL TABLE modern USING fts5(body); INSERT INTO modern SELECT c1body FROM notes_content");
    },
    notes: [/notes needs the fts4 module/, /old_notes needs the fts3 module/, /boxes needs the rtree module/],
    direct: async (db) => {
      // FTS5 is in the engine; FTS4 and R-Tree are not, and say so with their own error.
      assert.deepEqual(await db.query("SELECT count(*) AS n FROM modern WHERE modern MATCH 'fox'"), [{ n: 40 }]);
      await assert.rejects(db.query("SELECT * FROM notes WHERE notes MATCH 'fox'"), (e: Error) => e instanceof MissingModuleError && /no fts4 module/.test(e.message));
      await assert.rejects(db.query('SELECT * FROM boxes'), (e: Error) => e instanceof MissingModuleError && e.code === 'MISSING_MODULE');
      assert.deepEqual(await db.query('SELECT count(*) AS n FROM notes_content'), [{ n: 40 }]);
    },
  },
  { name: 'raw key (64 hex digits)', native: [], cipher: {}, cliArgs: [], secret: () => ({ keyHex: crypto.randomBytes(32).toString('hex') }) },
];

/** Makes the database natively: two tables with a foreign key, and the kind's extra content. */
function makeNative(kind: Kind, file: string, secret: Secret): void {
  withNative(file, [nativeKey(secret), ...kind.native], (db) => {
    db.exec(`CREATE TABLE owner (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
      CREATE TABLE pet (id INTEGER PRIMARY KEY, owner INTEGER NOT NULL REFERENCES owner(id), name TEXT);
      INSERT INTO owner VALUES (1, 'ada'), (2, 'grace');
      WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 300) INSERT INTO pet (owner, name) SELECT 1 + i % 2, 'pet ' || i FROM c;`);
    kind.fill?.(db);
  });
}

interface NativeView {
  master: unknown[];
  counts: Record<string, number>;
  /** Every row of every ordinary table, rowid first where there is one. */
  rows: Record<string, unknown[]>;
  header: unknown[];
  integrity: unknown[];
  foreignKeys: unknown[];
}

/** What native SQLCipher sees in the file: schema, row counts of every ordinary table, integrity_check, foreign_key_check. */
function nativeView(file: string, pragmas: string[]): NativeView {
  return withNative(file, pragmas, (db) => {
    const master = db.prepare('SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name').all();
    const counts: Record<string, number> = {};
    const rows: Record<string, unknown[]> = {};
    for (const { name, sql } of master as Array<{ name: string; sql: string | null; type: string }>) {
      if ((master as Array<{ name: string; type: string }>).find((m) => m.name === name)?.type !== 'table' || /^\s*create\s+virtual/i.test(sql ?? '')) continue;
      counts[name] = (db.prepare(`SELECT count(*) AS n FROM "${name}"`).get() as { n: number }).n;
      rows[name] = db.prepare(/without\s+rowid\s*$/i.test(sql ?? '') ? `SELECT * FROM "${name}" ORDER BY 1` : `SELECT rowid AS _rowid, * FROM "${name}" ORDER BY rowid`).all();
    }
    const header = db.prepare('SELECT * FROM pragma_user_version, pragma_application_id').all();
    return { master, counts, rows, header, integrity: db.prepare('PRAGMA integrity_check').all(), foreignKeys: db.prepare('PRAGMA foreign_key_check').all() };
  });
}

function assertSame(actual: NativeView, expected: NativeView, what: string): void {
  assert.deepEqual(actual.integrity, [{ integrity_check: 'ok' }], `${what}: integrity_check`);
  assert.deepEqual(actual.foreignKeys, [], `${what}: foreign_key_check`);
  assert.deepEqual(actual.master, expected.master, `${what}: sqlite_master`);
  assert.deepEqual(actual.counts, expected.counts, `${what}: row counts`);
  assert.deepEqual(actual.rows, expected.rows, `${what}: rows`);
  assert.deepEqual(actual.header, expected.header, `${what}: user_version, application_id`);
}

/** Every backup in `dir` opens natively under `secret` and under no other, the one the old password opened included. */
function assertOnlyUnder(dir: string, secret: Secret, old: Secret, pragmas: string[], expected: NativeView): void {
  const backups = onlyBackups(dir);
  assert.ok(backups.length >= 1, 'a backup remains');
  for (const b of backups) {
    assertSame(nativeView(b, [nativeKey(secret), ...pragmas]), expected, `backup ${path.basename(b)}`);
    assert.throws(() => nativeView(b, [nativeKey(old), ...pragmas]), `the old secret opens ${path.basename(b)}`);
  }
}

const onlyBackups = (d: string) => fs.readdirSync(d).filter((f) => f.endsWith('.db')).map((f) => path.join(d, f)).sort();

for (const kind of KINDS) {
  describe(`interop breadth: ${kind.name}`, () => {
    it('CLI: verify, backup, rotate-key, restore; native SQLCipher reads every result', async () => {
      const d = fresh('cli');
      const db = path.join(d, 'app.db');
      const backups = path.join(d, 'backups');
      const secret = kind.secret();
      makeNative(kind, db, secret);
      const before = nativeView(db, [nativeKey(secret), ...kind.native]);
      const k = cliKey(secret);
      const run = (args: string[], env: Record<string, string> = {}) => cli([...args, ...kind.cliArgs, ...k.args, '--json', '--quiet'], { env: { ...k.env, ...env } });

      const verified = await run(['verify', db]);
      assert.equal(verified.code, 0, verified.stdout + verified.stderr);
      const v = json(verified);
      for (const note of kind.notes ?? []) assert.ok(v.notes?.some((x: string) => note.test(x)), `note ${note} in ${JSON.stringify(v.notes)}`);
      if (!kind.notes) assert.equal(v.notes, undefined);

      const backedUp = await run(['backup', '--db', db, '--backup-dir', backups, '--force']);
      assert.equal(backedUp.code, 0, backedUp.stdout + backedUp.stderr);
      const backup = json(backedUp).backupPath as string;
      assertSame(nativeView(backup, [nativeKey(secret), ...kind.native]), before, 'backup');

      const next: Secret = 'password' in secret ? { password: `${secret.password} next` } : { keyHex: crypto.randomBytes(32).toString('hex') };
      const nk = cliKey(next, true);
      const rotated = await cli(['rotate-key', '--db', db, '--backup-dir', backups, ...kind.cliArgs, ...k.args, ...nk.args, '--json', '--quiet'], { env: { ...k.env, ...nk.env } });
      assert.equal(rotated.code, 0, rotated.stdout + rotated.stderr);
      assert.throws(() => nativeView(db, [nativeKey(secret), ...kind.native]), 'the old secret no longer opens it');
      const rotatedBackup = json(rotated).backupPath as string;
      assertSame(nativeView(db, [nativeKey(next), ...kind.native]), before, 'database after rotate-key');
      assertSame(nativeView(rotatedBackup, [nativeKey(next), ...kind.native]), before, 'backup after rotate-key');
      assertOnlyUnder(backups, next, secret, kind.native, before);

      // Change the database natively, then restore the backup over it: the backup's rows come back.
      withNative(db, [nativeKey(next), ...kind.native], (x) => x.exec('DELETE FROM pet WHERE id > 10'));
      const rk = cliKey(next);
      const restored = await cli(['restore', rotatedBackup, '--db', db, '--backup-dir', backups, ...kind.cliArgs, ...rk.args, '--json', '--quiet'], { env: rk.env });
      assert.equal(restored.code, 0, restored.stdout + restored.stderr);
      assertSame(nativeView(db, [nativeKey(next), ...kind.native]), before, 'restored database');
      assert.ok(onlyBackups(backups).length >= 1);
    });

    it('API: createBackup, verifyBackup, changePassword, restoreBackup; native SQLCipher reads every result', async () => {
      const d = fresh('api');
      const db = path.join(d, 'app.db');
      const secret = kind.secret();
      makeNative(kind, db, secret);
      const before = nativeView(db, [nativeKey(secret), ...kind.native]);
      const profile = { ...sqlcipher4, cipher: kind.cipher };
      const service = (s: Secret) => new BackupService({ databasePath: db, backupDir: path.join(d, 'backups'), keyProfile: profile, ...apiKey(s) });

      const made = await service(secret).createBackup({ force: true, verify: 'full' });
      assert.equal(made.success, true, made.error);
      const check = await service(secret).verifyBackup(made.backupPath!);
      assert.equal(check.ok, true, JSON.stringify(check));
      for (const note of kind.notes ?? []) assert.ok(check.ok && check.notes?.some((x) => note.test(x)), `note ${note}`);
      assertSame(nativeView(made.backupPath!, [nativeKey(secret), ...kind.native]), before, 'backup');

      const next: Secret = 'password' in secret ? { password: `${secret.password} api` } : { keyHex: crypto.randomBytes(32).toString('hex') };
      const changed = await service(secret).changePassword(apiKey(next));
      assert.equal(changed.success, true, changed.error);
      const restoreFrom = changed.backupPath!;
      assert.throws(() => nativeView(db, [nativeKey(secret), ...kind.native]), 'the old secret no longer opens it');
      assertSame(nativeView(db, [nativeKey(next), ...kind.native]), before, 'database after changePassword');
      assertOnlyUnder(path.join(d, 'backups'), next, secret, kind.native, before);
      assert.deepEqual((await service(next).listBackups()).map((b) => b.path), [restoreFrom], 'the new backup is listed as this database\'s');

      withNative(db, [nativeKey(next), ...kind.native], (x) => x.exec('DELETE FROM pet WHERE owner = 2; DELETE FROM owner WHERE id = 2'));
      const restored = await service(next).restoreBackup(restoreFrom);
      assert.equal(restored.success, true, restored.error);
      assertSame(nativeView(db, [nativeKey(next), ...kind.native]), before, 'restored database');

      // The engine opens it directly with the same options.
      const direct = await openDatabase(db, { ...apiKey(next), cipher: kind.cipher, readonly: true });
      assert.deepEqual(await direct.query('SELECT count(*) AS n FROM pet'), [{ n: 300 }]);
      await kind.direct?.(direct);
      await direct.close();
    });
  });
}

describe('interop breadth: what the CLI says about files it is not told how to open', () => {
  it('a SQLCipher 3 file checked with SQLCipher 4 settings: the error says to try --compat 3', async () => {
    const d = fresh('v3-hint');
    const small = path.join(d, 'small.db');
    const big = path.join(d, 'big.db');
    // 2 KiB (not whole 4 KiB pages) and 64 KiB (whole pages: only the key check can tell).
    withNative(small, ["key = 'pw3'", 'cipher_compatibility = 3'], (db) => db.exec('CREATE TABLE t (v)'));
    withNative(big, ["key = 'pw3'", 'cipher_compatibility = 3'], (db) => {
      db.exec('CREATE TABLE t (v)');
      const pages = () => (db.prepare('PRAGMA page_count').get() as { page_count: number }).page_count;
      while (pages() < 8 || pages() % 4 !== 0) db.exec('INSERT INTO t VALUES (randomblob(900))');
    });
    assert.equal(fs.statSync(big).size % 4096, 0, 'the big file is whole 4 KiB pages');
    for (const [file, exit] of [[small, 3], [big, 4]] as const) {
      const r = await cli(['verify', file, '--password-env', 'PW', '--json'], { env: { PW: 'pw3' } });
      assert.equal(r.code, exit, r.stdout);
      assert.match(json(r).error, /may be a SQLCipher 3 database: try compatibility: 3 \(CLI --compat 3\)/);
    }
    // A wrong password on the same file gets no such hint: the v3 check is a key check, not a guess.
    const wrong = await cli(['verify', big, '--password-env', 'PW', '--json'], { env: { PW: 'not it' } });
    assert.equal(wrong.code, 4);
    assert.doesNotMatch(json(wrong).error, /SQLCipher 3/);
    const right = await cli(['verify', big, '--compat', '3', '--password-env', 'PW', '--json'], { env: { PW: 'pw3' } });
    assert.equal(right.code, 0, right.stdout);
  });

  it('a plaintext-header file is reported as one (not as plain SQLite), and names the options it needs', async () => {
    const d = fresh('ph-detect');
    const file = path.join(d, 'ios.db');
    withNative(file, ["key = 'pw'", 'cipher_plaintext_header_size = 32', `cipher_salt = "x'${hex(SALT)}'"`], (db) => db.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)'));
    assert.equal(fs.readFileSync(file).subarray(0, 16).toString('latin1'), 'SQLite format 3\0');
    const r = await cli(['verify', file, '--password-env', 'PW', '--json'], { env: { PW: 'pw' } });
    assert.equal(r.code, 2, r.stdout);
    assert.equal(json(r).reason, 'plaintext-header');
    assert.match(json(r).error, /plaintext SQLite header.*--plaintext-header 32 --salt HEX/);
    assert.doesNotMatch(json(r).error, /plain SQLite\)/);
    // A wrong salt is a wrong key, not corruption.
    const badSalt = await cli(['verify', file, '--plaintext-header', '32', '--salt', '00'.repeat(16), '--password-env', 'PW', '--json'], { env: { PW: 'pw' } });
    assert.equal(badSalt.code, 4, badSalt.stdout);
  });

  it('raw keys come from --key-env or --key-fd as 64 hex digits; anything else is refused without echoing it', async () => {
    const d = fresh('raw-key');
    const file = path.join(d, 'raw.db');
    const keyHex = crypto.randomBytes(32).toString('hex');
    withNative(file, [`key = "x'${keyHex}'"`], (db) => db.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)'));
    const viaFd = await cli(['verify', file, '--key-fd', '0', '--json'], { input: `${keyHex}\n` });
    assert.equal(viaFd.code, 0, viaFd.stdout);
    const wrong = await cli(['verify', file, '--key-env', 'K', '--json'], { env: { K: crypto.randomBytes(32).toString('hex') } });
    assert.equal(wrong.code, 4, wrong.stdout);
    const secretish = `${keyHex.slice(0, 60)}zz`;
    for (const [args, opts] of [
      [['--key-env', 'K'], { env: { K: secretish } }],
      [['--key-env', 'K'], { env: { K: keyHex.slice(0, 62) } }],
      [['--key-fd', '0'], { input: `${secretish}\n` }],
    ] as const) {
      const r = await cli(['verify', file, ...args, '--json'], opts);
      assert.equal(r.code, 2, r.stdout);
      assert.match(json(r).error, /must be 64 hexadecimal digits/);
      assert.ok(!r.stdout.includes(keyHex.slice(0, 20)) && !r.stderr.includes(keyHex.slice(0, 20)), 'the key is never echoed');
    }
    const both = await cli(['verify', file, '--key-env', 'K', '--key-fd', '0', '--json'], { env: { K: keyHex } });
    assert.equal(both.code, 2);
  });
});

describe('interop breadth: the page-HMAC check reads each layout', () => {
  for (const kind of KINDS.slice(0, 2)) {
    it(`${kind.name}: one changed byte in page 1 (past the salt or header) or page 2 fails as corrupt`, async () => {
      const d = fresh('tamper');
      const file = path.join(d, 'good.db');
      const secret = kind.secret();
      makeNative(kind, file, secret);
      const service = new BackupService({ databasePath: file, backupDir: d, keyProfile: { ...sqlcipher4, cipher: kind.cipher }, ...apiKey(secret) });
      assert.equal((await service.verifyBackup(file)).ok, true);
      const pageSize = kind.cipher.compatibility === 3 ? 1024 : 4096;
      for (const offset of [40, pageSize + 7]) {
        const bad = path.join(d, `bad-${offset}.db`);
        const bytes = fs.readFileSync(file);
        bytes[offset]! ^= 0x01;
        fs.writeFileSync(bad, bytes);
        const r = await service.verifyBackup(bad);
        assert.equal(r.ok, false, `offset ${offset}`);
        assert.ok(!r.ok && (r.reason === 'corrupt'), `offset ${offset}: ${JSON.stringify(r)}`);
      }
    });
  }
});

describe('interop breadth: cipherkeep create makes each kind, and native SQLCipher opens it', () => {
  for (const kind of KINDS.filter((k) => !k.notes)) {
    it(kind.name, async () => {
      const d = fresh('create');
      const file = path.join(d, 'made.db');
      const secret = kind.secret();
      const k = cliKey(secret);
      const r = await cli(['create', '--db', file, ...kind.cliArgs, ...k.args, '--json'], { env: k.env });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      withNative(file, [nativeKey(secret), ...kind.native], (db) => db.exec("CREATE TABLE t (v); INSERT INTO t VALUES ('native')"));
      const view = nativeView(file, [nativeKey(secret), ...kind.native]);
      assert.deepEqual(view.integrity, [{ integrity_check: 'ok' }]);
      assert.deepEqual(view.counts, { t: 1 });
      if (kind.cipher.plaintextHeaderSize) assert.equal(fs.readFileSync(file).subarray(0, 16).toString('latin1'), 'SQLite format 3\0');
      if (kind.cipher.compatibility === 3) assert.equal(fs.statSync(file).size % 1024, 0);
    });
  }
});

describe('interop breadth: Database.rekey on a plaintext-header file', () => {
  it('keeps the salt the owner supplies (it is not in the file), so the file still opens with it, natively too', async () => {
    const d = fresh('ph-rekey');
    const file = path.join(d, 'ios.db');
    withNative(file, ["key = 'before'", 'cipher_plaintext_header_size = 32', `cipher_salt = "x'${hex(SALT)}'"`], (db) => db.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)'));
    const cipher = { plaintextHeaderSize: 32, salt: SALT };
    const db = await openDatabase(file, { password: 'before', cipher });
    await db.rekey({ password: 'after' }); // no keepSalt: a normal file would get a fresh salt
    await db.close();
    const again = await openDatabase(file, { password: 'after', cipher, readonly: true });
    assert.deepEqual(await again.query('SELECT v FROM t'), [{ v: 1 }]);
    await again.close();
    assert.deepEqual(withNative(file, ["key = 'after'", 'cipher_plaintext_header_size = 32', `cipher_salt = "x'${hex(SALT)}'"`], (x) => x.prepare('SELECT v FROM t').all()), [{ v: 1 }]);
  });
});

describe('interop breadth: large files take the parallel page check', () => {
  for (const kind of KINDS.slice(0, 2)) {
    it(`${kind.name}, over 8 MiB: verifies, and one changed byte is still found`, async () => {
      const d = fresh('large');
      const file = path.join(d, 'large.db');
      const secret = kind.secret();
      withNative(file, [nativeKey(secret), ...kind.native], (db) => db.exec("CREATE TABLE t (v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 9000) INSERT INTO t SELECT randomblob(1000) FROM c"));
      assert.ok(fs.statSync(file).size > 8 << 20);
      const service = new BackupService({ databasePath: file, backupDir: d, keyProfile: { ...sqlcipher4, cipher: kind.cipher }, ...apiKey(secret) });
      assert.equal((await service.verifyBackup(file)).ok, true);
      const bad = path.join(d, 'bad.db');
      const bytes = fs.readFileSync(file);
      bytes[bytes.length - 5000]! ^= 0x01;
      fs.writeFileSync(bad, bytes);
      const r = await service.verifyBackup(bad);
      assert.ok(!r.ok && r.reason === 'corrupt', JSON.stringify(r));
    });
  }
});

describe('interop breadth: incremental backups (the page store)', () => {
  it('SQLCipher 3 files back up and restore by generations; plaintext-header files are refused clearly, and nothing is written', async () => {
    const d = fresh('incremental');
    const [v3, ph] = KINDS;
    const v3File = path.join(d, 'v3.db');
    const v3Secret = v3!.secret();
    makeNative(v3!, v3File, v3Secret);
    const before = nativeView(v3File, [nativeKey(v3Secret), ...v3!.native]);
    const v3Service = new BackupService({ databasePath: v3File, backupDir: path.join(d, 'b3'), keyProfile: { ...sqlcipher4, cipher: v3!.cipher }, ...apiKey(v3Secret) });
    const made = await v3Service.createBackup({ incremental: true, force: true });
    assert.equal(made.success, true, made.error);
    assert.equal((await v3Service.verifyGeneration()).ok, true);
    withNative(v3File, [nativeKey(v3Secret), ...v3!.native], (db) => db.exec('DELETE FROM pet'));
    const restored = await v3Service.restoreGeneration('latest');
    assert.equal(restored.success, true, restored.error);
    assertSame(nativeView(v3File, [nativeKey(v3Secret), ...v3!.native]), before, 'restored generation');

    const phFile = path.join(d, 'ph.db');
    const phSecret = ph!.secret();
    makeNative(ph!, phFile, phSecret);
    const phService = new BackupService({ databasePath: phFile, backupDir: path.join(d, 'bp'), keyProfile: { ...sqlcipher4, cipher: ph!.cipher }, ...apiKey(phSecret) });
    const refused = await phService.createBackup({ incremental: true, force: true });
    assert.equal(refused.success, false);
    assert.equal(refused.errorCode, 'INVALID_ARGUMENT');
    assert.match(refused.error!, /incremental backups do not support files with a plaintext header/);
    const bp = path.join(d, 'bp');
    const files = fs.existsSync(bp) ? fs.readdirSync(bp, { recursive: true }).map(String).filter((f) => fs.statSync(path.join(bp, f)).isFile() && !f.includes('.cipherkeep-lock')) : [];
    assert.deepEqual(files, [], 'no generation, pack or manifest was written');
  });
});

describe('interop breadth: Database.rekey on a SQLCipher 3 file', () => {
  it('refuses (the engine cannot rekey that format in place), names the way that works, and leaves the file as it was', async () => {
    const d = fresh('v3-rekey');
    const file = path.join(d, 'old.db');
    withNative(file, ["key = 'before'", 'cipher_compatibility = 3'], (db) => db.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)'));
    const bytes = fs.readFileSync(file);
    const db = await openDatabase(file, { password: 'before', cipher: { compatibility: 3 } });
    await assert.rejects(db.rekey({ password: 'after' }), (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT' && /in place: use BackupService.changePassword \(CLI rotate-key\)/.test(e.message));
    await db.close();
    assert.deepEqual(fs.readFileSync(file), bytes);
  });
});

describe('interop breadth: Database.copyFrom', () => {
  it('refuses a missing source (creating nothing) and a target that already has tables', async () => {
    const d = fresh('copy-from');
    const target = path.join(d, 'target.db');
    const db = await openDatabase(target, { password: 'pw', cipher: { compatibility: 3 }, create: true });
    await assert.rejects(db.copyFrom(path.join(d, 'missing.db'), { password: 'pw' }), (e: Error & { code?: string }) => e.code === 'NOT_FOUND');
    assert.equal(fs.existsSync(path.join(d, 'missing.db')), false);
    await db.exec('CREATE TABLE t (v)');
    await assert.rejects(db.copyFrom(target, { password: 'pw' }), (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT' && /new, empty database/.test(e.message));
    await db.close();
  });
});
