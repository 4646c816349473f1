/**
 * Values as they are: text with NUL, 4-byte UTF-8 and great length
 * round-trips through cipherkeep and native SQLCipher both ways; values too
 * large for the engine are a TooBigError and leave it whole.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import path from 'node:path';
import { InvalidArgumentError, TooBigError } from '../src/index.ts';
import { openDatabase } from '../src/node.ts';
import { tempDir, withNative } from './helpers.ts';

const FAST = { kdfIterations: 1000 };
const NATIVE_KEY = ["key = 'pw'", 'kdf_iter = 1000'];
const dir = tempDir('inputs');
let n = 0;
const fresh = () => path.join(dir, `db-${++n}.db`);

// Long text: NULs, 2-, 3- and 4-byte characters spread through over 8 MiB of UTF-8.
const long = Array.from({ length: 1 << 18 }, (_, i) => `${i}\0é€😀`).join('').repeat(3);

const TEXTS: Record<string, string> = {
  'NUL inside': 'a\0b',
  'NUL only': '\0',
  'NULs at both ends': '\0middle\0',
  '4-byte UTF-8': '😀 𝄞 \u{10FFFF} \u{1F468}\u200D\u{1F469}\u200D\u{1F467}',
  'U+FFFD itself': '\uFFFD',
  empty: '',
  'very long (over 8 MiB, NULs and emoji throughout)': long,
};

const utf8Bytes = (s: string) => Buffer.byteLength(s, 'utf8');

describe('inputs', { timeout: 120_000 }, () => {
  it('text with NUL, 4-byte UTF-8 and great length: cipherkeep → cipherkeep and → native SQLCipher', async () => {
    const file = fresh();
    const db = await openDatabase(file, { password: 'pw', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (name TEXT, v TEXT)');
    for (const [name, v] of Object.entries(TEXTS)) await db.run('INSERT INTO t VALUES (?, ?)', [name, v]);
    await db.run('INSERT INTO t VALUES (:name, :v)', { name: 'named parameter', v: 'x\0y' });
    const rows = await db.query<{ name: string; v: string; bytes: number }>('SELECT name, v, octet_length(v) AS bytes FROM t');
    for (const row of rows) {
      const expected = TEXTS[row.name] ?? 'x\0y';
      assert.equal(row.bytes, utf8Bytes(expected), `${row.name}: SQLite holds every byte`);
      assert.ok(row.v === expected, `${row.name}: reads back unchanged`);
    }
    await db.close();
    const native = withNative(file, NATIVE_KEY, (ndb) => ndb.prepare('SELECT name, v FROM t').all() as { name: string; v: string }[]);
    assert.equal(native.length, Object.keys(TEXTS).length + 1);
    for (const row of native) assert.ok(row.v === (TEXTS[row.name] ?? 'x\0y'), `${row.name}: native SQLCipher reads what cipherkeep wrote`);
  });

  it('text native SQLCipher wrote reads back whole in cipherkeep', async () => {
    const file = fresh();
    withNative(file, NATIVE_KEY, (ndb) => {
      ndb.exec('CREATE TABLE t (name TEXT, v TEXT)');
      const insert = ndb.prepare('INSERT INTO t VALUES (?, ?)');
      for (const [name, v] of Object.entries(TEXTS)) insert.run([name, v]);
    });
    const db = await openDatabase(file, { password: 'pw', cipher: FAST });
    const rows = await db.query<{ name: string; v: string }>('SELECT name, v FROM t');
    assert.equal(rows.length, Object.keys(TEXTS).length);
    for (const row of rows) assert.ok(row.v === TEXTS[row.name], `${row.name}: unchanged`);
    // SQL-made text with a NUL (no parameter involved) reads back whole too.
    assert.deepEqual(await db.query("SELECT CAST(x'610062' AS TEXT) AS v"), [{ v: 'a\0b' }]);
    await db.close();
  });

  it('a lone surrogate is refused (native SQLCipher stores U+FFFD instead); nothing is written', async () => {
    const file = fresh();
    const db = await openDatabase(file, { password: 'pw', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (v TEXT)');
    for (const bad of ['\uD800', 'emoji cut in half: \uD83D', '\uDE00 low first', `${'a'.repeat(100_000)}\uDFFF`]) {
      const e = await db.run('INSERT INTO t VALUES (?)', [bad]).then(() => null, (err: unknown) => err);
      assert.ok(e instanceof InvalidArgumentError, `refused: ${String(e)}`);
      assert.match((e as Error).message, /lone surrogate/);
    }
    assert.deepEqual(await db.query('SELECT count(*) AS n FROM t'), [{ n: 0 }]);
    // A surrogate pair is a character, not a lone half.
    await db.run('INSERT INTO t VALUES (?)', ['\uD83D\uDE00']);
    assert.deepEqual(await db.query('SELECT v FROM t'), [{ v: '😀' }]);
    await db.close();
    // What native SQLCipher does with the same input: U+FFFD in its place — cipherkeep reads that as stored.
    withNative(file, NATIVE_KEY, (ndb) => ndb.prepare('INSERT INTO t VALUES (?)').run(['x\uD800y']));
    const again = await openDatabase(file, { password: 'pw', cipher: FAST });
    assert.deepEqual((await again.query('SELECT v FROM t'))[1], { v: 'x\uFFFDy' });
    await again.close();
  });

  it('blobs with NUL bytes and of length 0 keep every byte; a value SQLite cannot store is refused, not NULLed', async () => {
    const db = await openDatabase(fresh(), { password: 'pw', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (v)');
    const blob = new Uint8Array([0, 0, 1, 0, 255, 0]);
    await db.run('INSERT INTO t VALUES (?), (?)', [blob, new Uint8Array(0)]);
    const rows = await db.query<{ v: Uint8Array; t: string }>('SELECT v, typeof(v) AS t FROM t');
    assert.deepEqual(rows, [{ v: blob, t: 'blob' }, { v: new Uint8Array(0), t: 'blob' }]);
    for (const odd of [{ a: 1 }, [1, 2], new Date(0), () => 1] as unknown[]) {
      await assert.rejects(db.run('INSERT INTO t VALUES (?)', [odd as string]), InvalidArgumentError);
    }
    assert.deepEqual(await db.query('SELECT count(*) AS n FROM t'), [{ n: 2 }]);
    await db.close();
  });

  it('three 900 MiB blobs in one statement: TooBigError, and the engine stays whole for this and other connections', async () => {
    const other = await openDatabase(fresh(), { password: 'pw', create: true, cipher: FAST });
    await other.exec("CREATE TABLE t (v); INSERT INTO t VALUES ('before')");
    const db = await openDatabase(fresh(), { password: 'pw', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (v)');
    // Fresh zeroed buffers: the kernel gives them memory only when written, and nothing writes them.
    const huge = () => new Uint8Array(900 * 2 ** 20);
    const e = await db.run('INSERT INTO t VALUES (?), (?), (?)', [huge(), huge(), huge()]).then(() => null, (err: unknown) => err);
    assert.ok(e instanceof TooBigError, `TooBigError, got ${String(e)}`);
    assert.equal((e as TooBigError).code, 'TOO_BIG');
    assert.match((e as Error).message, /engine's memory/);

    // The same connection works, values and all.
    const mib = crypto.getRandomValues(new Uint8Array(65536)).map((b, i) => (i % 7 === 0 ? 0 : b));
    await db.run('INSERT INTO t VALUES (?)', [mib]);
    assert.deepEqual(await db.query('SELECT v FROM t'), [{ v: mib }]);
    assert.deepEqual(await db.query('PRAGMA quick_check'), [{ quick_check: 'ok' }]);
    // And so does another connection of the same engine.
    await other.run('INSERT INTO t VALUES (?)', ['after']);
    assert.deepEqual(await other.query('SELECT v FROM t'), [{ v: 'before' }, { v: 'after' }]);
    await Promise.all([db.close(), other.close()]);
  });

  it("one value past SQLite's length limit (1e9 bytes): TooBigError before the engine sees it", async () => {
    const db = await openDatabase(fresh(), { password: 'pw', create: true, cipher: FAST });
    const e = await db.query('SELECT length(?) AS n', [new Uint8Array(1_000_000_001)]).then(() => null, (err: unknown) => err);
    assert.ok(e instanceof TooBigError, String(e));
    assert.match((e as Error).message, /1000000001 bytes, more than SQLite's limit of 1000000000/);
    assert.deepEqual(await db.query('SELECT length(?) AS n', [new Uint8Array(1000)]), [{ n: 1000 }]);
    await db.close();
  });

  it('long SQL text runs (checked before it is copied into the engine)', async () => {
    const db = await openDatabase(fresh(), { password: 'pw', create: true, cipher: FAST });
    const sql = `SELECT length('${'é'.repeat(300_000)}') AS n, 'tail' AS t`;
    assert.ok(sql.length > 1 << 16);
    assert.deepEqual(await db.query(sql), [{ n: 300_000, t: 'tail' }]);
    await db.close();
  });
});
