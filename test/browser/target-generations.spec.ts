/**
 * Incremental backups to a folder the user picked, in real Chromium: the
 * worker keeps full backups in OPFS and page-store generations in the folder
 * (a `{ folder, incremental: true }` target); only changed pages go there.
 * After a reload (a new worker; the folder's handle back from IndexedDB) an
 * older generation is restored from the folder, and the restored database
 * opens in native SQLCipher.
 *
 * As in worker-targets.spec.ts, showDirectoryPicker() is stubbed to return a
 * real FileSystemDirectoryHandle of a folder in OPFS (Playwright cannot
 * drive the native picker); everything after the picker is real.
 */
import { test, expect, type Page } from '@playwright/test';
import { bytesOf, harness, nativeRows } from './native.ts';

async function load(page: Page): Promise<void> {
  await harness(page);
  await page.addScriptTag({ url: '/harness/offsite.js', type: 'module' });
  await expect(page).toHaveTitle('offsite ready');
  await page.evaluate(() => window.offsite.stubPicker('picked-gens'));
}

/** The worker, with the picked folder (its handle from IndexedDB) as an incremental target. */
async function open(page: Page): Promise<string> {
  return page.evaluate(async () => {
    const folder = (await window.cipherkeep.backupFolder('gens').handle())!;
    const keep = await window.harness.open({ targets: [{ folder, incremental: true, generations: { keepLast: 5 } }] });
    return (await keep.targetIds())[0]!;
  });
}

test('generations to a picked folder; after a reload an older generation restores from the folder', async ({ page }) => {
  test.setTimeout(180_000);
  await load(page);
  await page.evaluate(async () => void (await window.cipherkeep.backupFolder('gens').pick()));
  const id = await open(page);
  expect(id).toBe('folder:picked-gens');

  const made = await page.evaluate(async (id) => {
    const keep = window.harness.keep!;
    await keep.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 3000) INSERT INTO notes (body) SELECT 'private note ' || i FROM c");
    const first = await keep.createBackup();
    await keep.exec("UPDATE notes SET body = 'second' WHERE id = 10");
    const sameDay = await keep.createBackup();
    // Past the daily rule: a fresh local backup, and a generation of its changed pages in the folder.
    const second = await keep.createBackup({ force: true });
    await keep.exec("UPDATE notes SET body = 'third' WHERE id = 10; DELETE FROM notes WHERE id > 2000");
    const third = await keep.createBackup({ force: true });
    await keep.close();
    return { first, sameDay, second, third, folder: await window.offsite.names('picked-gens'), local: await window.harness.listOpfs('/backups') };
  }, id);
  expect(made.first.success).toBe(true);
  expect(made.first.backupPath).toMatch(/^\/backups\/backup_.*\.db$/);
  expect(made.first.targets).toEqual([expect.objectContaining({ target: id, success: true, action: 'uploaded', generation: '1', full: true })]);
  expect(made.sameDay.existing).toBe(true);
  expect(made.sameDay.targets).toEqual([expect.objectContaining({ success: true, action: 'existing', generation: '1' })]);
  expect(made.second.targets).toEqual([expect.objectContaining({ success: true, action: 'uploaded', generation: '2', full: false })]);
  expect(made.third.targets).toEqual([expect.objectContaining({ success: true, action: 'uploaded', generation: '3', full: false })]);
  expect(made.second.targets![0]!.pagesWritten).toBeLessThanOrEqual(4);
  expect(made.second.targets![0]!.sizeBytes).toBeLessThan(made.first.targets![0]!.sizeBytes! / 4);
  const manifests = made.folder.filter((n) => n.endsWith('.manifest'));
  expect(manifests).toEqual(['backup.app.db.pages.gen-0000000001.manifest', 'backup.app.db.pages.gen-0000000002.manifest', 'backup.app.db.pages.gen-0000000003.manifest']);
  expect(made.folder.filter((n) => !n.startsWith('backup.app.db.pages.'))).toEqual([]); // nothing else: no temporary or swap file
  expect(made.local.filter((n) => n.includes('.pages'))).toEqual([]); // the generations are in the folder only

  await page.reload();
  await load(page);
  expect(await open(page)).toBe(id);
  const out = await page.evaluate(async (id) => {
    const keep = window.harness.keep!;
    const list = await keep.listTargetGenerations(id);
    const verified = await keep.verifyTargetGeneration(id, '2');
    const before = await keep.query('SELECT count(*) AS n, (SELECT body FROM notes WHERE id = 10) AS b FROM notes');
    const restored = await keep.restoreTargetGeneration(id, '2');
    // The worker reopened its connection on the restored database.
    const after = await keep.query('SELECT count(*) AS n, (SELECT body FROM notes WHERE id = 10) AS b FROM notes');
    await keep.close();
    return { list, verified, before, restored, after, db: await window.harness.readOpfs('/app.db') };
  }, id);
  expect(out.list.problems).toEqual([]);
  expect(out.list.generations.map((g) => [g.generation, g.state])).toEqual([['3', 'ok'], ['2', 'ok'], ['1', 'ok']]);
  expect(out.verified).toMatchObject({ ok: true, generation: '2' });
  expect(out.before).toEqual([{ n: 2000, b: 'third' }]);
  expect(out.restored).toMatchObject({ success: true, generation: '2' });
  expect(out.after).toEqual([{ n: 3000, b: 'second' }]);
  const db = bytesOf(out.db);
  expect(Buffer.from(db).includes(Buffer.from('private note'))).toBe(false);
  expect(nativeRows(db, 'pw', "SELECT count(*) AS n FROM notes WHERE body = 'second'")).toEqual([{ n: 1 }]);
});
