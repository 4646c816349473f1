/**
 * The browser worker's page-check pool (src/worker/page-check-pool.ts) in real
 * Chromium over real OPFS: a backup past the pool's 8 MiB threshold is checked
 * by more than one pool worker, with progress, and a flipped byte in any
 * range is still caught at its page number (the lowest, when two are bad).
 */
import { test, expect } from '@playwright/test';
import { harness } from './native.ts';

test('a large backup is checked by several pool workers; flipped bytes are caught at the right page', async ({ page }) => {
  test.setTimeout(120_000);
  await harness(page);
  const out = await page.evaluate(async () => {
    const keep = await window.harness.open();
    // About 16 MiB: random blobs do not compress or share pages.
    await keep.exec('CREATE TABLE blobs (data BLOB); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 4000) INSERT INTO blobs SELECT randomblob(4000) FROM c');
    const before = await keep.pageCheckStats();
    const created = await keep.createBackup();
    const afterCreate = await keep.pageCheckStats();
    const path = created.backupPath!;
    let progressMax = 0;
    const clean = await keep.verifyBackup(path, (p) => void (p.phase === 'verify' && (progressMax = Math.max(progressMax, p.bytesDone))));

    // Flip one byte inside a page's ciphertext, with the backup closed.
    const flip = async (pageNo: number) => {
      let dir = await navigator.storage.getDirectory();
      const parts = path.split('/').filter(Boolean);
      for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p);
      const handle = await dir.getFileHandle(parts.at(-1)!);
      const at = (pageNo - 1) * 4096 + 100;
      const old = new Uint8Array(await (await handle.getFile()).slice(at, at + 1).arrayBuffer());
      const w = await handle.createWritable({ keepExistingData: true });
      await w.write({ type: 'write', position: at, data: new Uint8Array([old[0]! ^ 0x01]) });
      await w.close();
    };
    const pages = created.sizeBytes / 4096;
    const late = pages - 7; // in the last range
    const early = 123; // in the first
    await flip(late);
    const lateOnly = await keep.verifyBackup(path);
    await flip(early);
    const both = await keep.verifyBackup(path);
    const afterAll = await keep.pageCheckStats();
    await keep.close();
    return { before, created, afterCreate, clean, progressMax, pages, late, early, lateOnly, both, afterAll };
  });
  expect(out.created.success).toBe(true);
  expect(out.created.sizeBytes).toBeGreaterThan(8 << 20);
  expect(out.before).toMatchObject({ ranges: 0, files: 0 });
  // createBackup's own verify went through the pool, on more than one worker.
  expect(out.afterCreate!.files).toBe(1);
  expect(out.afterCreate!.workersUsed).toBeGreaterThanOrEqual(2);
  expect(out.afterCreate!.fallbacks).toBe(0);
  expect(out.clean).toMatchObject({ ok: true });
  expect(out.progressMax).toBe(out.created.sizeBytes);
  expect(out.lateOnly).toMatchObject({ ok: false, reason: 'corrupt', detail: `page ${out.late} failed its HMAC check` });
  expect(out.both).toMatchObject({ ok: false, reason: 'corrupt', detail: `page ${out.early} failed its HMAC check` });
  // Every check after the first reused the pool: no new workers, every file through it.
  expect(out.afterAll!.started).toBe(out.afterCreate!.started);
  expect(out.afterAll!.files).toBe(4);
  expect(out.afterAll!.fallbacks).toBe(0);
});
