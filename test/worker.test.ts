/** The Comlink client over Node (and Deno) worker_threads: the same API browsers get. */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openKeepWorker, SqliteError, WrongKeyError, type Progress } from '../src/node.ts';
import { nativeQuery, passphraseKey, tempDir } from './helpers.ts';

describe('worker client', () => {
  it('runs SQL and backups off the main thread, with typed errors, progress, streamed export and verified import', async () => {
    const dir = tempDir('worker');
    const keep = await openKeepWorker({ databasePath: path.join(dir, 'app.db'), backupDir: path.join(dir, 'backups'), password: 'pw', create: true, maxBackups: 5 });
    try {
      await keep.exec('CREATE TABLE t (v TEXT)');
      assert.deepEqual(await keep.batch([{ sql: 'INSERT INTO t VALUES (?)', params: ['a'] }, { sql: 'INSERT INTO t VALUES (?)', params: ['b'] }]), [
        { changes: 1, lastInsertRowid: 1 },
        { changes: 1, lastInsertRowid: 2 },
      ]);
      await assert.rejects(keep.query('SELEKT'), (e: unknown) => e instanceof SqliteError && e.code === 'SQLITE');
      const seen: Progress[] = [];
      const r = await keep.createBackup({}, (p) => void seen.push(p));
      assert.equal(r.success, true, r.error);
      assert.ok(seen.some((p) => p.phase === 'export'), 'progress crossed the thread boundary');
      const chunks: Uint8Array[] = [];
      for await (const chunk of (await keep.exportBackup(r.backupPath!)) as unknown as AsyncIterable<Uint8Array>) chunks.push(chunk);
      const exported = Buffer.concat(chunks);
      assert.deepEqual(exported, fs.readFileSync(r.backupPath!));
      const copy = path.join(dir, 'exported.db');
      fs.writeFileSync(copy, exported);
      assert.deepEqual(nativeQuery(copy, passphraseKey('pw'), 'SELECT v FROM t'), [{ v: 'a' }, { v: 'b' }]);
      const imported = await keep.importBackup(new Blob([exported]));
      assert.equal(imported.success, true, imported.error);
      const refused = await keep.importBackup(new Blob([new Uint8Array(8192)]));
      assert.equal(refused.success, false);
      assert.equal((await keep.listBackups()).length, 2);
      const changed = await keep.changePassword({ password: 'pw2' });
      assert.equal(changed.success, true, changed.error);
      assert.deepEqual(await keep.query('SELECT count(*) AS n FROM t'), [{ n: 2 }], 'reopened under the new password');
    } finally {
      await keep.close();
      await keep.terminate();
    }
  });

  it('a wrong password arrives as WrongKeyError and stops the worker', async () => {
    const dir = tempDir('worker');
    const keep = await openKeepWorker({ databasePath: path.join(dir, 'a.db'), backupDir: dir, password: 'pw', create: true });
    await keep.close();
    await keep.terminate();
    await assert.rejects(openKeepWorker({ databasePath: path.join(dir, 'a.db'), backupDir: dir, password: 'nope' }), WrongKeyError);
  });

  it('calls reject, not hang, once the worker is gone', async () => {
    const dir = tempDir('worker');
    const keep = await openKeepWorker({ databasePath: path.join(dir, 'a.db'), backupDir: dir, password: 'pw', create: true });
    await keep.terminate();
    await assert.rejects(keep.query('SELECT 1'), /terminated|failed/);
  });
});
