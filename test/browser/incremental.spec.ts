/**
 * Incremental backups in real headless Chromium: page-store generations made
 * by the worker from the database in OPFS, into OPFS; the page reloads (a new
 * worker, only OPFS left), and an older generation is restored; the restored
 * file opens in native SQLCipher.
 */
import { test, expect } from '@playwright/test';
import { bytesOf, harness, nativeRows } from './native.ts';

test('incremental backups from OPFS; after a reload an older generation restores', async ({ page }) => {
  await harness(page);
  const made = await page.evaluate(async () => {
    const keep = await window.harness.open({ incremental: true });
    await keep.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 3000) INSERT INTO notes (body) SELECT 'private note ' || i FROM c");
    const first = await keep.createBackup();
    await keep.exec("UPDATE notes SET body = 'second' WHERE id = 10");
    const second = await keep.createBackup();
    await keep.exec("UPDATE notes SET body = 'third' WHERE id = 10; DELETE FROM notes WHERE id > 2000");
    const third = await keep.createBackup();
    await keep.close();
    return { first, second, third, store: await window.harness.listOpfs('/backups/backup.app.db.pages') };
  });
  expect(made.first).toMatchObject({ success: true, generation: '1', full: true });
  expect(made.second).toMatchObject({ success: true, generation: '2', full: false });
  expect(made.third).toMatchObject({ success: true, generation: '3', full: false });
  expect(made.second.pagesWritten).toBeLessThanOrEqual(4);
  expect(made.second.sizeBytes).toBeLessThan(made.first.sizeBytes / 4);
  expect(made.store.filter((n) => n.startsWith('gen-'))).toEqual(['gen-0000000001.manifest', 'gen-0000000002.manifest', 'gen-0000000003.manifest']);

  await page.reload();
  await expect(page.locator('#status')).toHaveText('ready');
  const out = await page.evaluate(async () => {
    const keep = await window.harness.open({ create: false });
    const list = await keep.listGenerations();
    const verified = await keep.verifyGeneration('2');
    const before = await keep.query('SELECT count(*) AS n, (SELECT body FROM notes WHERE id = 10) AS b FROM notes');
    const restored = await keep.restoreGeneration('2');
    // The worker reopened its connection on the restored database.
    const after = await keep.query('SELECT count(*) AS n, (SELECT body FROM notes WHERE id = 10) AS b FROM notes');
    await keep.close();
    return { list, verified, before, restored, after, db: await window.harness.readOpfs('/app.db'), top: await window.harness.listOpfs('/') };
  });
  expect(out.list.problems).toEqual([]);
  expect(out.list.generations.map((g) => [g.generation, g.state])).toEqual([['3', 'ok'], ['2', 'ok'], ['1', 'ok']]);
  expect(out.verified).toMatchObject({ ok: true, generation: '2' });
  expect(out.before).toEqual([{ n: 2000, b: 'third' }]);
  expect(out.restored).toMatchObject({ success: true, generation: '2' });
  expect(out.restored.preRestorePath).toMatch(/^\/app\.db\.pre-restore-/);
  expect(out.after).toEqual([{ n: 3000, b: 'second' }]);
  const db = bytesOf(out.db);
  expect(Buffer.from(db).includes(Buffer.from('private note'))).toBe(false);
  expect(nativeRows(db, 'pw', "SELECT count(*) AS n FROM notes WHERE body = 'second'")).toEqual([{ n: 1 }]);
  expect(out.top.filter((n) => n.endsWith('.tmp'))).toEqual([]);
});
