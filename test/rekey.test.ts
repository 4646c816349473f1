/**
 * rekey gives the file a fresh salt, and byte-copy backups need nothing for
 * it: each carries the salt of the moment it was taken in its own first 16
 * bytes, so a backup from before the rekey opens with the old password and
 * one from after with the new — in cipherkeep and in native SQLCipher.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { sqlcipher4, WrongKeyError } from '../src/index.ts';
import { BackupService, openDatabase } from '../src/node.ts';
import { nativeQuery, tempDir } from './helpers.ts';

const FAST = { kdfIterations: 1000 };
const native = (pw: string) => [`key = '${pw}'`, 'kdf_iter = 1000'];
const saltOf = (file: string) => fs.readFileSync(file).subarray(0, 16).toString('hex');

describe('rekey and backups', { timeout: 60_000 }, () => {
  it('a backup from before a rekey opens with the old password, one from after with the new', async () => {
    const dir = tempDir('rekey');
    const file = path.join(dir, 'app.db');
    const backupDir = path.join(dir, 'backups');
    const service = (password: string) => new BackupService({ databasePath: file, password, backupDir, maxBackups: 5, keyProfile: { ...sqlcipher4, cipher: FAST } });

    const db = await openDatabase(file, { password: 'old pw', create: true, cipher: FAST });
    await db.exec("CREATE TABLE t (v); INSERT INTO t VALUES ('before')");
    const oldSalt = Buffer.from(db.salt).toString('hex');
    await db.close();
    const before = await service('old pw').createBackup();
    assert.equal(before.success, true, before.error);

    const again = await openDatabase(file, { password: 'old pw', cipher: FAST });
    await again.rekey({ password: 'new pw' });
    await again.run("INSERT INTO t VALUES ('after')");
    await again.close();
    const newSalt = saltOf(file);
    assert.notEqual(newSalt, oldSalt, 'the rekeyed file has a fresh salt');
    const after = await service('new pw').createBackup({ force: true });
    assert.equal(after.success, true, after.error);

    assert.equal(saltOf(before.backupPath!), oldSalt, 'the old backup keeps the salt it was taken with');
    assert.equal(saltOf(after.backupPath!), newSalt);
    assert.deepEqual(await service('old pw').verifyBackup(before.backupPath!), { ok: true, pages: 2, tables: 1 });
    assert.equal((await service('new pw').verifyBackup(after.backupPath!)).ok, true);
    assert.equal((await service('new pw').verifyBackup(before.backupPath!)).ok, false, 'the new password does not open the old backup');
    assert.equal((await service('old pw').verifyBackup(after.backupPath!)).ok, false, 'nor the old password the new one');
    assert.deepEqual(nativeQuery(before.backupPath!, native('old pw'), 'SELECT v FROM t'), [{ v: 'before' }]);
    assert.deepEqual(nativeQuery(after.backupPath!, native('new pw'), 'SELECT v FROM t'), [{ v: 'before' }, { v: 'after' }]);
    await assert.rejects(openDatabase(file, { password: 'old pw', cipher: FAST }), WrongKeyError);
  });

  it('every rekey draws a new salt, raw keys included', async () => {
    const dir = tempDir('rekey');
    const file = path.join(dir, 'app.db');
    const db = await openDatabase(file, { password: 'a', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)');
    const salts = new Set([Buffer.from(db.salt).toString('hex')]);
    const key = crypto.getRandomValues(new Uint8Array(32));
    for (const material of [{ password: 'b' }, { key }, { password: 'c' }]) {
      await db.rekey(material);
      salts.add(Buffer.from(db.salt).toString('hex'));
    }
    await db.close();
    assert.equal(salts.size, 4);
    assert.equal(saltOf(file), [...salts].at(-1));
    assert.deepEqual(nativeQuery(file, native('c'), 'SELECT v FROM t'), [{ v: 1 }]);
  });
});
