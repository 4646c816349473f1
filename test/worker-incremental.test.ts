/** Incremental backups through the Comlink worker client over Node (and Deno) worker_threads: the API browsers get. */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import path from 'node:path';
import { openKeepWorker, type Progress } from '../src/node.ts';
import { tempDir } from './helpers.ts';

describe('worker client: incremental backups', () => {
  it('makes generations, lists and verifies them, restores an older one and reopens on it', async () => {
    const dir = tempDir('worker-incremental');
    const keep = await openKeepWorker({
      databasePath: path.join(dir, 'app.db'), backupDir: path.join(dir, 'backups'), password: 'pw', create: true,
      cipher: { kdfIterations: 1000 }, incremental: true, generations: { keepLast: 5 },
    });
    try {
      await keep.exec("CREATE TABLE t (v TEXT); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 1000) INSERT INTO t SELECT 'row ' || i FROM c");
      const seen: Progress[] = [];
      const first = await keep.createBackup({}, (p) => void seen.push(p));
      assert.equal(first.success, true, first.error);
      assert.deepEqual([first.generation, first.full], ['1', true]);
      assert.ok(seen.some((p) => p.phase === 'verify'), 'page-store progress crossed the thread boundary');
      await keep.exec("UPDATE t SET v = 'changed' WHERE rowid = 1");
      const second = await keep.createBackup();
      assert.deepEqual([second.generation, second.full], ['2', false]);
      assert.deepEqual((await keep.listGenerations()).generations.map((g) => g.generation), ['2', '1']);
      assert.equal((await keep.verifyGeneration('1')).ok, true);
      const restored = await keep.restoreGeneration('1');
      assert.equal(restored.success, true, restored.error);
      assert.deepEqual(await keep.query('SELECT v FROM t WHERE rowid = 1'), [{ v: 'row 1' }], 'reopened on the restored database');
      const bad = await keep.restoreGeneration('9');
      assert.equal(bad.success, false);
      assert.equal(bad.errorCode, 'NOT_FOUND');
    } finally {
      await keep.close();
      await keep.terminate();
    }
  });
});
