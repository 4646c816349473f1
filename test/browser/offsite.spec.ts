/**
 * Backups off the database's storage, in real Chromium: a folder the user
 * picks as a BackupTarget (the target contract), its permission states, a
 * backup copied by the worker from OPFS to the folder surviving a reload and
 * opening after the database and its OPFS backups are gone, the schedule
 * remembering its last run across a reload, and the downloads fallback where
 * there is no folder picker.
 *
 * Playwright cannot click the native picker: test/browser/offsite-page.ts
 * stubs `showDirectoryPicker()` to return a real FileSystemDirectoryHandle of
 * a folder in OPFS (so "the folder survives the origin's storage being
 * cleared" is not what these tests show: they show the handle, the copy and
 * the schedule surviving a reload, and the copy surviving the loss of the
 * database and its backups). The permission a browser drops between visits
 * is simulated the same way (see that file); the user gesture is a real click.
 */
import { test, expect, type Page } from '@playwright/test';
import { targetCases } from '../contract/target.contract.ts';

async function load(page: Page, picked = 'picked'): Promise<void> {
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  await page.goto('/harness/');
  await expect(page.locator('#status')).toHaveText('ready');
  await page.addScriptTag({ url: '/harness/offsite.js', type: 'module' });
  await expect(page).toHaveTitle('offsite ready');
  await page.evaluate((name) => window.offsite.stubPicker(name), picked);
}

for (const c of targetCases) {
  test(`the folder target (an OPFS folder as the picked one): ${c.name}`, async ({ page }) => {
    test.setTimeout(60_000);
    await load(page);
    expect(await page.evaluate((name) => window.offsite.runCase(name), c.name)).toBe('ok');
  });
}

// Where file handles have no move(), a put writes under the name itself: failing, it must still leave nothing new
// there and keep what was. (Chromium removing the file fails for a moment after the writer is aborted.)
for (const c of targetCases.filter((x) => /fails|wrong number/.test(x.name))) {
  test(`the folder target without move(): ${c.name}`, async ({ page }) => {
    test.setTimeout(60_000);
    await load(page);
    for (let i = 0; i < 5; i++) expect(await page.evaluate((name) => window.offsite.runCase(name, true), c.name)).toBe('ok');
  });
}

test('a backup goes from OPFS to the picked folder through the worker, and the folder, the copy and the schedule survive a reload', async ({ page }) => {
  test.setTimeout(90_000);
  await load(page);
  const first = await page.evaluate(async () => {
    const keep = await window.harness.open();
    await keep.exec("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('kept off-site')");
    const backup = await keep.createBackup();
    const folder = window.cipherkeep.backupFolder('test');
    const before = await folder.state();
    const handle = await folder.pick();
    const progress: number[] = [];
    const copied = await keep.copyBackupToFolder(backup.backupPath!, handle, (p) => void progress.push(p.bytesDone));
    let runs = 0;
    const schedule = window.cipherkeep.browserSchedule({ everyMs: 3600_000, key: 'test-offsite', job: async () => void runs++ });
    const record = await schedule.runNow();
    return {
      before, after: await folder.state(), copied, progress, runs, record,
      names: await window.offsite.names('picked'),
      source: await window.offsite.digest(await window.offsite.opfsFile(backup.backupPath!)),
      copy: await window.offsite.digest(await (await handle.getFileHandle(copied.name)).getFile()),
    };
  });
  expect(first.before).toBe('no-folder');
  expect(first.after).toBe('ready');
  expect(first.names).toEqual([first.copied.name]); // the copy only: no temporary or swap file
  expect(first.copied.sizeBytes).toBeGreaterThan(0);
  expect(first.progress.at(-1)).toBe(first.copied.sizeBytes);
  expect(first.copy).toBe(first.source);
  expect(first.runs).toBe(1);
  expect(first.record.failures).toBe(0);

  await page.reload();
  await load(page);
  const second = await page.evaluate(async (lastSuccessAt) => {
    const folder = window.cipherkeep.backupFolder('test');
    const handle = await folder.handle(); // from IndexedDB, not from the picker
    let runs = 0;
    const job = async () => void runs++;
    const schedule = window.cipherkeep.browserSchedule({ everyMs: 3600_000, key: 'test-offsite', job });
    const nextDueAt = await schedule.nextDueAt();
    await schedule.check(); // not due: ran an hour ago at most
    const notDue = runs;
    const later = window.cipherkeep.browserSchedule({ everyMs: 3600_000, key: 'test-offsite', job, now: () => lastSuccessAt + 3600_001 });
    await later.check(); // due by the stored time
    const files: string[] = [];
    for await (const [n] of handle as unknown as AsyncIterable<[string, unknown]>) files.push(n);
    return { state: await folder.state(), files, nextDueAt, notDue, runs, record: await later.record() };
  }, first.record.lastSuccessAt!);
  expect(second.state).toBe('ready');
  expect(second.files).toEqual([first.copied.name]);
  expect(second.nextDueAt).toBe(first.record.lastSuccessAt! + 3600_000);
  expect(second.notDue).toBe(0);
  expect(second.runs).toBe(1);
  expect(second.record.lastSuccessAt).toBe(first.record.lastSuccessAt! + 3600_001);

  // The database and its OPFS backups are lost; the folder's copy becomes the database again.
  const restored = await page.evaluate(async (name) => {
    const root = await navigator.storage.getDirectory();
    await root.removeEntry('app.db');
    await root.removeEntry('backups', { recursive: true });
    const handle = (await window.cipherkeep.backupFolder('test').handle())!;
    const w = await (await root.getFileHandle('app.db', { create: true })).createWritable();
    await (await (await handle.getFileHandle(name)).getFile()).stream().pipeTo(w);
    const keep = await window.harness.open({ create: false });
    return keep.query('SELECT body FROM notes');
  }, first.copied.name);
  expect(restored).toEqual([{ body: 'kept off-site' }]);
});

test('permission states: paused when the browser drops the permission, ready again after a click asks for it', async ({ page }) => {
  await load(page);
  await page.evaluate(async () => void (await window.cipherkeep.backupFolder('perm').pick()));
  await page.evaluate(() => window.offsite.permissions('prompt'));
  const paused = await page.evaluate(async () => {
    const folder = window.cipherkeep.backupFolder('perm');
    const target = new window.FolderTarget((await folder.handle())!);
    const put = await target.put('x.db', 3, async () => new Uint8Array(3)).then(() => 'stored', (e) => `${e.code}: ${e.message}`);
    const state = await folder.state();
    // Playwright's evaluate() counts as a user gesture; Chromium's lasts 5 s, so wait it out to ask without one.
    await new Promise((r) => setTimeout(r, 5500));
    const ask = await folder.requestAccess().then((s) => s, (e) => `${e.code}: ${e.message}`);
    return { state, put, ask, after: await folder.state(), names: await window.offsite.names('picked') };
  });
  expect(paused.state).toBe('permission-needed');
  expect(paused.put).toMatch(/^TARGET_DENIED: folder:picked: put x\.db: permission needed \(prompt\)/);
  expect(paused.ask).toMatch(/^TARGET_DENIED: .*call requestAccess\(\) from a click/);
  expect(paused.after).toBe('permission-needed');
  expect(paused.names).toEqual([]);

  // A real user gesture: Playwright's click gives the page transient activation.
  await page.evaluate(() => {
    const b = Object.assign(document.createElement('button'), { id: 'allow', textContent: 'Allow backups' });
    b.onclick = () => void window.cipherkeep.backupFolder('perm').requestAccess().then((s) => (b.dataset.state = s));
    document.body.append(b);
  });
  await page.click('#allow');
  await expect(page.locator('#allow')).toHaveAttribute('data-state', 'ready');
  const resumed = await page.evaluate(async () => {
    const target = new window.FolderTarget((await window.cipherkeep.backupFolder('perm').handle())!);
    await target.put('x.db', 3, async () => new Uint8Array([1, 2, 3]));
    return (await target.list('')).map((o) => `${o.name}:${o.size}`);
  });
  expect(resumed).toEqual(['x.db:3']);

  await page.evaluate(() => window.offsite.permissions('denied'));
  expect(await page.evaluate(() => window.cipherkeep.backupFolder('perm').state())).toBe('permission-needed');
  await page.evaluate(() => window.cipherkeep.backupFolder('perm').forget());
  expect(await page.evaluate(() => window.cipherkeep.backupFolder('perm').state())).toBe('no-folder');
});

test('without File System Access (Firefox, Safari) the state says unsupported, pick() is UNSUPPORTED, and a backup downloads instead', async ({ page }) => {
  await load(page);
  await page.evaluate(() => window.offsite.removePicker());
  const out = await page.evaluate(async () => {
    const folder = window.cipherkeep.backupFolder('none');
    const pick = await folder.pick().then(() => 'picked', (e) => `${e.code}: ${e.message}`);
    const keep = await window.harness.open();
    await keep.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)');
    const backup = await keep.createBackup();
    return {
      state: await folder.state(), supported: folder.supported, pick, path: backup.backupPath!,
      digest: await window.offsite.digest(await window.offsite.opfsFile(backup.backupPath!)),
    };
  });
  expect(out).toMatchObject({ state: 'unsupported', supported: false });
  expect(out.pick).toMatch(/^UNSUPPORTED: .*downloadBackup/);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.evaluate((path) => window.cipherkeep.downloadBackup(window.harness.keep!, path, { picker: false }), out.path),
  ]);
  const bytes = new Uint8Array(await (await download.createReadStream()).toArray().then((c) => Buffer.concat(c)));
  const digest = Buffer.from(await crypto.subtle.digest('SHA-256', bytes)).toString('hex');
  expect(download.suggestedFilename()).toBe(out.path.split('/').at(-1));
  expect(digest).toBe(out.digest);
});

test('the worker copies only its own backups, and copying one again replaces it whole', async ({ page }) => {
  await load(page);
  const out = await page.evaluate(async () => {
    const keep = await window.harness.open();
    await keep.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)');
    const backup = await keep.createBackup();
    const handle = await window.cipherkeep.backupFolder('again').pick();
    const refused = await keep.copyBackupToFolder('/app.db', handle).then(() => 'copied', (e) => `${e.code}: ${e.message}`);
    const a = await keep.copyBackupToFolder(backup.backupPath!, handle);
    const b = await keep.copyBackupToFolder(backup.backupPath!, handle);
    return { refused, a, b, names: await window.offsite.names('picked') };
  });
  expect(out.refused).toMatch(/^INVALID_ARGUMENT: not a backup of this service: \/app\.db/);
  expect(out.b).toEqual(out.a);
  expect(out.names).toEqual([out.a.name]);
});
