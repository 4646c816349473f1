/** Files move both ways between cipherkeep and real SQLCipher 4 (@signalapp/sqlcipher, native). */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as SQLite from '@journeyapps/wa-sqlite';
import { nodeEngine, openDatabase } from '../src/node.ts';
import { nativeQuery, passphraseKey, rawKey, tempDir, withNative } from './helpers.ts';

const dir = tempDir('interop');
let n = 0;
const fresh = () => path.join(dir, `interop-${++n}.db`);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('cipherkeep → native SQLCipher 4', () => {
  it('passphrase, default SQLCipher 4 settings', async () => {
    const file = fresh();
    const db = await openDatabase(file, { password: "pa'ss wörd", create: true });
    await db.exec("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('from wasm')");
    await db.close();
    assert.deepEqual(nativeQuery(file, passphraseKey("pa'ss wörd"), 'SELECT v FROM t'), [{ v: 'from wasm' }]);
  });

  it('raw 32-byte key', async () => {
    const file = fresh();
    const key = crypto.getRandomValues(new Uint8Array(32));
    const db = await openDatabase(file, { key, create: true });
    await db.exec('CREATE TABLE t (v); INSERT INTO t VALUES (42)');
    await db.close();
    assert.deepEqual(nativeQuery(file, rawKey(hex(key)), 'SELECT v FROM t'), [{ v: 42 }]);
  });

  it('16 KiB cipher pages, SHA1 HMAC, 10000 iterations, WAL', async () => {
    const file = fresh();
    const cipher = { pageSize: 16384, kdfIterations: 10_000, hmacAlgorithm: 'SHA1' } as const;
    const db = await openDatabase(file, { password: 'pw', create: true, cipher, journalMode: 'wal' });
    await db.exec('CREATE TABLE t (v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 1000) INSERT INTO t SELECT i FROM c');
    await db.close();
    assert.equal(fs.statSync(file).size % 16384, 0);
    const pragmas = [...passphraseKey('pw'), 'cipher_page_size = 16384', 'kdf_iter = 10000', 'cipher_hmac_algorithm = HMAC_SHA1'];
    assert.deepEqual(nativeQuery(file, pragmas, 'SELECT count(*) AS n, sum(v) AS s FROM t'), [{ n: 1000, s: 500500 }]);
  });

  // The native peer (Signal's build) fails every SHA-256 operation ("error from
  // provider kdf"), so KDF hashes are checked against sqlite3mc's own PBKDF2.
  for (const kdfAlgorithm of ['SHA1', 'SHA256', 'SHA512'] as const) {
    it(`WebCrypto PBKDF2-${kdfAlgorithm} derives the key sqlite3mc's own KDF derives`, async () => {
      const file = fresh();
      const cipher = { kdfIterations: 5000, kdfAlgorithm };
      const db = await openDatabase(file, { password: 'pw', create: true, cipher });
      await db.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)');
      await db.close();
      const { engine, vfsName } = await nodeEngine();
      const handle = await engine.sqlite3.open_v2(file, SQLite.SQLITE_OPEN_READWRITE, vfsName);
      const rows: unknown[] = [];
      try {
        const index = { SHA1: 0, SHA256: 1, SHA512: 2 }[kdfAlgorithm];
        await engine.sqlite3.exec(handle, `PRAGMA cipher='sqlcipher'; PRAGMA legacy=4; PRAGMA kdf_iter=5000; PRAGMA kdf_algorithm=${index}; PRAGMA key='pw'`);
        await engine.sqlite3.exec(handle, 'SELECT v FROM t', (row) => rows.push(row));
      } finally {
        await engine.sqlite3.close(handle);
      }
      assert.deepEqual(rows, [[1]]);
    });
  }
});

describe('native SQLCipher 4 → cipherkeep', () => {
  it('passphrase, default settings', async () => {
    const file = fresh();
    withNative(file, passphraseKey('native pw'), (db) => db.exec("CREATE TABLE t (v); INSERT INTO t VALUES ('from native')"));
    const db = await openDatabase(file, { password: 'native pw' });
    assert.deepEqual(await db.query('SELECT v FROM t'), [{ v: 'from native' }]);
    await db.run("INSERT INTO t VALUES ('and back')");
    await db.close();
    assert.equal(nativeQuery(file, passphraseKey('native pw'), 'SELECT v FROM t').length, 2);
  });

  it("raw key given as x'hex'", async () => {
    const file = fresh();
    const key = crypto.getRandomValues(new Uint8Array(32));
    withNative(file, rawKey(hex(key)), (db) => db.exec('CREATE TABLE t (v); INSERT INTO t VALUES (7)'));
    const db = await openDatabase(file, { key });
    assert.deepEqual(await db.query('SELECT v FROM t'), [{ v: 7 }]);
    await db.close();
  });

  it('16 KiB pages in WAL mode with the WAL left un-checkpointed', async () => {
    const source = fresh();
    const pragmas = [...passphraseKey('pw'), 'cipher_page_size = 16384'];
    const native = new (await import('@signalapp/sqlcipher')).default(source);
    try {
      for (const p of pragmas) native.pragma(p);
      native.pragma('journal_mode = WAL');
      native.pragma('wal_autocheckpoint = 0');
      native.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t(v)");
      native.exec("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 500) INSERT INTO t (v) SELECT 'row ' || i FROM c");
      // Copy while native still holds it open: the rows live only in the -wal file (a crash image).
      const copy = fresh();
      fs.copyFileSync(source, copy);
      fs.copyFileSync(`${source}-wal`, `${copy}-wal`);
      assert.ok(fs.statSync(`${copy}-wal`).size > 16384 * 2, 'WAL holds the frames');
      const db = await openDatabase(copy, { password: 'pw', cipher: { pageSize: 16384 } });
      assert.deepEqual(await db.query('SELECT count(*) AS n, max(v) AS m FROM t'), [{ n: 500, m: 'row 99' }]);
      assert.deepEqual(await db.query('PRAGMA quick_check'), [{ quick_check: 'ok' }]);
      await db.close();
      assert.equal(fs.existsSync(`${copy}-wal`), false, 'closing checkpointed the WAL into the file');
      assert.deepEqual(nativeQuery(copy, pragmas, 'SELECT count(*) AS n FROM t'), [{ n: 500 }]);
    } finally {
      native.close();
    }
  });
});
