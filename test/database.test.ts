/** The Database API: statements, parameters, transactions, rekey, close. */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ClosedError, InvalidArgumentError, SqliteError, WrongKeyError } from '../src/index.ts';
import { openDatabase } from '../src/node.ts';
import { nativeQuery, passphraseKey, tempDir } from './helpers.ts';

const dir = tempDir('database');
let n = 0;
const fresh = () => path.join(dir, `db-${++n}.db`);
const FAST = { kdfIterations: 1000 };

describe('Database', () => {
  it('binds positional and named parameters of every type and reads them back', async () => {
    const db = await openDatabase(fresh(), { password: 'pw', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)');
    const big = 2 ** 40 + 3;
    await db.run('INSERT INTO t VALUES (?, ?, ?, ?, ?)', [big, 1.5, 'héllo \u{1F600}', new Uint8Array([0, 1, 255]), null]);
    await db.run('INSERT INTO t VALUES (:i, @r, $s, :b, :n)', { i: 9007199254740993n, r: -0.25, s: '', b: new Uint8Array(0), n: true });
    const rows = await db.query('SELECT i, typeof(i) AS ti, r, s, b, n FROM t ORDER BY rowid');
    assert.deepEqual(rows[0], { i: big, ti: 'integer', r: 1.5, s: 'héllo \u{1F600}', b: new Uint8Array([0, 1, 255]), n: null });
    assert.equal(rows[1]!.i, 9007199254740993n, 'integers beyond 2^53 come back as bigint');
    assert.equal(rows[1]!.n, 1);
    await assert.rejects(db.run('INSERT INTO t (i) VALUES (?)', []), InvalidArgumentError);
    await db.close();
  });

  it('run() reports changes and lastInsertRowid beyond 32 bits', async () => {
    const db = await openDatabase(fresh(), { password: 'pw', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v)');
    assert.deepEqual(await db.run('INSERT INTO t (id, v) VALUES (?, 1)', [5_000_000_000]), { changes: 1, lastInsertRowid: 5_000_000_000 });
    assert.deepEqual(await db.run('INSERT INTO t (v) VALUES (2), (3)'), { changes: 2, lastInsertRowid: 5_000_000_002 });
    assert.equal((await db.run('UPDATE t SET v = v + 1')).changes, 3);
    await db.close();
  });

  it('transaction() commits on success and rolls back on throw', async () => {
    const db = await openDatabase(fresh(), { password: 'pw', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (v)');
    const result = await db.transaction(async (tx) => {
      await tx.run('INSERT INTO t VALUES (1)');
      return (await tx.query<{ n: number }>('SELECT count(*) AS n FROM t'))[0]!.n;
    });
    assert.equal(result, 1);
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.run('INSERT INTO t VALUES (2)');
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.deepEqual(await db.query('SELECT v FROM t'), [{ v: 1 }]);
    let leaked: Parameters<Parameters<typeof db.transaction>[0]>[0] | undefined;
    await db.transaction(async (tx) => void (leaked = tx));
    await assert.rejects(leaked!.run('INSERT INTO t VALUES (3)'), ClosedError, 'tx is dead after the transaction');
    await db.close();
  });

  it('calls on one connection run in order even when not awaited', async () => {
    const db = await openDatabase(fresh(), { password: 'pw', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (v)');
    const calls = Array.from({ length: 50 }, (_, i) => db.run('INSERT INTO t VALUES (?)', [i]));
    await Promise.all(calls);
    const rows = await db.query<{ v: number }>('SELECT v FROM t ORDER BY rowid');
    assert.deepEqual(rows.map((r) => r.v), Array.from({ length: 50 }, (_, i) => i));
    await db.close();
  });

  it('finalizes statements on every path, including errors', async () => {
    const db = await openDatabase(fresh(), { password: 'pw', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (v UNIQUE)');
    await db.run('INSERT INTO t VALUES (1)');
    await assert.rejects(db.run('INSERT INTO t VALUES (1)'), SqliteError);
    await assert.rejects(db.query('SELEKT 1'), SqliteError);
    await assert.rejects(db.exec('SELECT 1; SELECT nope FROM t'), SqliteError);
    // sqlite3_close() (not close_v2) fails with SQLITE_BUSY while any statement is unfinalized.
    await db.close();
  });

  it('connections opened all at once each get their own handle', async () => {
    const files = Array.from({ length: 20 }, () => fresh());
    const dbs = await Promise.all(files.map((f) => openDatabase(f, { password: 'pw', create: true, cipher: FAST })));
    await Promise.all(dbs.map((db, i) => db.exec(`CREATE TABLE t (v); INSERT INTO t VALUES (${i})`)));
    assert.deepEqual(await Promise.all(dbs.map(async (db) => (await db.query<{ v: number }>('SELECT v FROM t'))[0]!.v)), files.map((_, i) => i));
    await Promise.all(dbs.map((db) => db.close()));
  });

  it('close() is idempotent and use after close is a ClosedError', async () => {
    const db = await openDatabase(fresh(), { password: 'pw', create: true, cipher: FAST });
    await db.close();
    await db.close();
    assert.equal(db.closed, true);
    await assert.rejects(db.query('SELECT 1'), ClosedError);
    await assert.rejects(db.transaction(async () => {}), ClosedError);
  });

  for (const journalMode of ['delete', 'wal'] as const) {
    it(`rekey() changes the password (${journalMode} mode); native SQLCipher agrees`, async () => {
      const file = fresh();
      const db = await openDatabase(file, { password: 'old', create: true, journalMode });
      const salt = Buffer.from(db.salt).toString('hex');
      await db.exec("CREATE TABLE t (v); INSERT INTO t VALUES ('kept')");
      await db.rekey({ password: 'new' });
      const newSalt = Buffer.from(db.salt).toString('hex');
      assert.notEqual(newSalt, salt, 'rekey draws a fresh salt');
      assert.deepEqual(await db.query('SELECT v FROM t'), [{ v: 'kept' }]);
      assert.deepEqual(await db.query('PRAGMA journal_mode'), [{ journal_mode: journalMode }]);
      await db.close();
      assert.equal(fs.readFileSync(file).subarray(0, 16).toString('hex'), newSalt, 'the file carries the new salt');
      await assert.rejects(openDatabase(file, { password: 'old' }), WrongKeyError);
      const again = await openDatabase(file, { password: 'new' });
      assert.equal(Buffer.from(again.salt).toString('hex'), newSalt);
      await again.close();
      assert.deepEqual(nativeQuery(file, passphraseKey('new'), 'SELECT v FROM t'), [{ v: 'kept' }]);
    });
  }

  it('rekey() from a password to a raw key and back', async () => {
    const file = fresh();
    const key = crypto.getRandomValues(new Uint8Array(32));
    const db = await openDatabase(file, { password: 'pw', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)');
    await db.rekey({ key });
    await db.close();
    const raw = await openDatabase(file, { key, cipher: FAST });
    assert.deepEqual(await raw.query('SELECT v FROM t'), [{ v: 1 }]);
    await raw.rekey({ password: 'back' });
    await raw.close();
    const back = await openDatabase(file, { password: 'back', cipher: FAST });
    await back.close();
  });

  it('readonly connections read but cannot write', async () => {
    const file = fresh();
    const db = await openDatabase(file, { password: 'pw', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)');
    await db.close();
    const ro = await openDatabase(file, { password: 'pw', readonly: true, cipher: FAST });
    assert.deepEqual(await ro.query('SELECT v FROM t'), [{ v: 1 }]);
    await assert.rejects(ro.run('INSERT INTO t VALUES (2)'), SqliteError);
    await ro.close();
  });

  it('rejects bad key material with InvalidArgumentError', async () => {
    await assert.rejects(openDatabase(fresh(), { password: '', create: true }), InvalidArgumentError);
    await assert.rejects(openDatabase(fresh(), { key: new Uint8Array(31), create: true }), InvalidArgumentError);
    await assert.rejects(openDatabase(fresh(), { password: 'pw', create: true, cipher: { pageSize: 1000 } }), InvalidArgumentError);
  });
});
