/** Bad input gets a typed error and changes nothing on disk. */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  CorruptDatabaseError, DatabaseNotFoundError, MissingDirectoryError, NotEncryptedError, WrongKeyError, CipherkeepError,
} from '../src/index.ts';
import { openDatabase } from '../src/node.ts';
import { sha256, tempDir, withNative } from './helpers.ts';

const FAST = { kdfIterations: 1000 };

/** Directory listing with each file's hash: what "nothing changed" means. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, sha256(fs.readFileSync(path.join(dir, f)))]));
}

async function expectUntouched(dir: string, open: () => Promise<unknown>, errorClass: new (...a: any[]) => Error) {
  const before = snapshot(dir);
  const error = await open().then(() => null, (e: unknown) => e);
  assert.ok(error instanceof errorClass, `expected ${errorClass.name}, got ${String(error)}`);
  assert.ok(error instanceof CipherkeepError);
  assert.doesNotMatch((error as Error).message, /secret-password|x'/);
  assert.deepEqual(snapshot(dir), before, 'no file created or changed');
}

async function makeDb(file: string): Promise<void> {
  const db = await openDatabase(file, { password: 'secret-password', create: true, cipher: FAST });
  await db.exec("CREATE TABLE t (v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 500) INSERT INTO t SELECT randomblob(100) FROM c");
  await db.close();
}

describe('bad input', () => {
  it('wrong password: WrongKeyError', async () => {
    const dir = tempDir('bad');
    await makeDb(path.join(dir, 'a.db'));
    await expectUntouched(dir, () => openDatabase(path.join(dir, 'a.db'), { password: 'nope', cipher: FAST }), WrongKeyError);
    await expectUntouched(dir, () => openDatabase(path.join(dir, 'a.db'), { key: new Uint8Array(32), cipher: FAST }), WrongKeyError);
  });

  it('a plain SQLite file: NotEncryptedError', async () => {
    const dir = tempDir('bad');
    withNative(path.join(dir, 'plain.db'), [], (db) => db.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)'));
    await expectUntouched(dir, () => openDatabase(path.join(dir, 'plain.db'), { password: 'secret-password', create: true }), NotEncryptedError);
  });

  it('random bytes: WrongKeyError', async () => {
    const dir = tempDir('bad');
    fs.writeFileSync(path.join(dir, 'random.db'), crypto.getRandomValues(new Uint8Array(8192)));
    await expectUntouched(dir, () => openDatabase(path.join(dir, 'random.db'), { password: 'secret-password', cipher: FAST }), WrongKeyError);
  });

  it('truncated mid-page: CorruptDatabaseError before SQLite reads it', async () => {
    const dir = tempDir('bad');
    const file = path.join(dir, 'cut.db');
    await makeDb(file);
    fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2) + 100);
    await expectUntouched(dir, () => openDatabase(file, { password: 'secret-password', cipher: FAST }), CorruptDatabaseError);
  });

  it('truncated at a page boundary: CorruptDatabaseError on reading', async () => {
    const dir = tempDir('bad');
    const file = path.join(dir, 'cut.db');
    await makeDb(file);
    fs.truncateSync(file, 4096 * 3);
    await expectUntouched(dir, async () => {
      const db = await openDatabase(file, { password: 'secret-password', cipher: FAST });
      try {
        await db.query('SELECT count(*), sum(length(v)) FROM t');
      } finally {
        await db.close();
      }
    }, CorruptDatabaseError);
  });

  it('an empty file: CorruptDatabaseError', async () => {
    const dir = tempDir('bad');
    fs.writeFileSync(path.join(dir, 'empty.db'), '');
    await expectUntouched(dir, () => openDatabase(path.join(dir, 'empty.db'), { password: 'secret-password' }), CorruptDatabaseError);
  });

  it('a missing file without create: DatabaseNotFoundError', async () => {
    const dir = tempDir('bad');
    await expectUntouched(dir, () => openDatabase(path.join(dir, 'absent.db'), { password: 'secret-password' }), DatabaseNotFoundError);
  });

  it('a missing parent directory: MissingDirectoryError, and the directory is not created', async () => {
    const dir = tempDir('bad');
    await expectUntouched(dir, () => openDatabase(path.join(dir, 'no', 'such', 'x.db'), { password: 'secret-password', create: true }), MissingDirectoryError);
    assert.equal(fs.existsSync(path.join(dir, 'no')), false);
  });

  it('odd characters in file names are just names', async () => {
    const dir = tempDir('bad');
    const file = path.join(dir, `it's "odd" ?#%&;-- 名前 ${'x'.repeat(100)}.db`);
    const db = await openDatabase(file, { password: 'secret-password', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)');
    await db.close();
    assert.deepEqual(fs.readdirSync(dir), [path.basename(file)]);
    const again = await openDatabase(file, { password: 'secret-password', cipher: FAST });
    assert.deepEqual(await again.query('SELECT v FROM t'), [{ v: 1 }]);
    await again.close();
  });
});
