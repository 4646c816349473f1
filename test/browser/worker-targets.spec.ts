/**
 * Backups that survive the device, in real Chromium against the real Swift:
 * the page opens the worker with two off-site targets — a folder the user
 * picked and S3 through presigned URLs — and a backup goes from OPFS to both,
 * survives a reload, and is restored after the origin's storage is cleared.
 *
 * The page holds no S3 credential: its presign callback stays on the page
 * (the worker calls it through a Comlink proxy for each request) and asks
 * the "app's server" at /presign, which this test answers with
 * createPresigner (Playwright routes the page's request here).
 *
 * Playwright cannot click the native picker, so showDirectoryPicker() is
 * stubbed (test/browser/offsite-page.ts) to return a real
 * FileSystemDirectoryHandle of a folder in the origin's OPFS. That folder is
 * origin storage too, so clearing the origin's storage clears it with the
 * rest: restoring from the folder is shown before the clear, and after the
 * clear the restore comes from Swift — the copy that is really off the device.
 */
import { test, expect, type Page } from '@playwright/test';
import { createHash } from 'node:crypto';
import { S3Target, createPresigner, type Presign } from '../../src/targets/s3/index.ts';
import { swift, useSwift, type SwiftUse } from '../swift.ts';

let store: SwiftUse;
let presign: Presign;
const run = `browser-keep-${Date.now().toString(36)}`;
const prefix = `${run}/notes/`;

test.beforeAll(async () => {
  test.setTimeout(240_000);
  store = await useSwift();
  if (!store.env) return;
  const env = store.env;
  presign = createPresigner({
    bucket: env.bucket, endpoint: env.endpoint, region: env.region, prefix: `${run}/`,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
  });
});

/** The store as a script sees it, with credentials (never the page's). */
const storeView = () => {
  const env = store.env!;
  return new S3Target({ bucket: env.bucket, endpoint: env.endpoint, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey } });
};

test.afterAll(async () => {
  if (store?.env) {
    const all = storeView();
    for (const o of await all.client.listObjects(`${run}/`)) await all.client.deleteObject(o.key);
  }
  if (store?.started) await swift('stop');
});

/** The app's server: signs what the page asks at /presign, within `${run}/` only. Returns what it signed. */
async function serveSigner(page: Page): Promise<string[]> {
  const signed: string[] = [];
  await page.route('**/presign', async (route) => {
    const { method, key, request } = JSON.parse(route.request().postData() ?? '{}');
    try {
      const answer = await presign(method, key, request);
      signed.push(`${method} ${key}`);
      await route.fulfill({ json: answer });
    } catch (e) {
      await route.fulfill({ status: 403, body: (e as Error).message });
    }
  });
  return signed;
}

async function load(page: Page): Promise<void> {
  await page.goto('/harness/');
  await expect(page.locator('#status')).toHaveText('ready');
  await page.addScriptTag({ url: '/harness/offsite.js', type: 'module' });
  await expect(page).toHaveTitle('offsite ready');
  await page.evaluate(() => window.offsite.stubPicker('picked'));
}

/**
 * Opens the worker with the picked folder (when `folder`) and S3 as targets,
 * as an app would: the handle from IndexedDB, the presign callback on the page.
 */
async function openWithTargets(page: Page, options: { folder: boolean; whenMissing?: 'backups-only' }): Promise<string[]> {
  return page.evaluate(async ({ prefix, folder, whenMissing }) => {
    const { cipherkeep, harness } = window;
    const presign = async (method: string, key: string, request: unknown) => {
      const res = await fetch('/presign', { method: 'POST', body: JSON.stringify({ method, key, request }) });
      if (!res.ok) throw new cipherkeep.TargetDeniedError(`the app's server refused to sign: ${await res.text()}`);
      return res.json();
    };
    const targets: import('../../src/browser.ts').KeepTarget[] = [];
    if (folder) targets.push({ folder: (await cipherkeep.backupFolder('test').handle())!, maxBackups: 2 });
    targets.push({ s3: { presign, prefix, retry: { attempts: 2, baseDelayMs: 20 } }, maxBackups: 7, maxAgeDays: 30 });
    const keep = await harness.open({ targets, cipher: { kdfIterations: 1000 }, ...(whenMissing ? { create: false, whenMissing } : {}) });
    return keep.targetIds();
  }, { prefix, ...options });
}

test('a backup goes from OPFS to a picked folder and to Swift via presign, survives a reload, and restores from Swift after the origin storage is cleared', async ({ page, context }) => {
  test.skip(!store.env, store.skip ?? '');
  test.setTimeout(180_000);
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  const toStore: { url: string; authorization?: string }[] = [];
  context.on('request', (r) => {
    if (r.url().startsWith(store.env!.endpoint)) toStore.push({ url: r.url(), authorization: r.headers().authorization });
  });
  const signed = await serveSigner(page);
  await load(page);

  // First visit: the user picks a folder; the worker writes each backup to OPFS, the folder and S3.
  await page.evaluate(async () => void (await window.cipherkeep.backupFolder('test').pick()));
  const ids = await openWithTargets(page, { folder: true });
  expect(ids).toEqual(['folder:picked', `s3 (presigned) ${prefix}`]);
  const [folderId, s3Id] = ids as [string, string];
  const first = await page.evaluate(async ([folderId, s3Id]) => {
    const keep = window.harness.keep!;
    await keep.exec("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('kept off the device')");
    const phases = new Set<string>();
    const r = await keep.createBackup({}, (p) => void phases.add(p.phase));
    return {
      r, phases: [...phases],
      folder: await keep.listTargetBackups(folderId!), s3: await keep.listTargetBackups(s3Id!),
      names: await window.offsite.names('picked'),
      local: await window.offsite.digest(await window.offsite.opfsFile(r.backupPath!)),
    };
  }, [folderId, s3Id]);
  expect(first.r.success).toBe(true);
  const name = first.r.backupPath!.split('/').at(-1)!;
  expect(first.r.targets).toEqual([
    { target: folderId, success: true, action: 'uploaded', name, sizeBytes: first.r.sizeBytes, deleted: 0 },
    { target: s3Id, success: true, action: 'uploaded', name, sizeBytes: first.r.sizeBytes, deleted: 0 },
  ]);
  expect(first.phases).toEqual(expect.arrayContaining(['upload', 'verify']));
  expect(first.folder.map((b) => b.filename)).toEqual([name]);
  expect(first.s3.map((b) => b.filename)).toEqual([name]);
  expect(first.names).toEqual([name]); // the copy only: no temporary or swap file
  // On the store, byte for byte the backup in OPFS.
  const remote = await storeView().client.getObject(`${prefix}${name}`);
  expect(createHash('sha256').update(remote).digest('hex')).toBe(first.local);
  // Signed by the app's server, never by the page: no request to the store carried credentials.
  expect(signed).toEqual(expect.arrayContaining([`PUT ${prefix}${name}`]));
  expect(toStore.length).toBeGreaterThan(0); // the worker's requests, as Chromium reports them
  for (const r of toStore) {
    expect(r.authorization).toBeUndefined();
    expect(r.url).toContain('X-Amz-Signature=');
  }

  // Restoring from the folder (it is cleared with the origin below, so it is shown here).
  const fromFolder = await page.evaluate(async ([folderId, name]) => {
    const keep = window.harness.keep!;
    await keep.exec("UPDATE notes SET body = 'changed after the backup'");
    const r = await keep.restoreTargetBackup(folderId!, name!);
    return { r, rows: await keep.query('SELECT body FROM notes') };
  }, [folderId, name]);
  expect(fromFolder.r.success).toBe(true);
  expect(fromFolder.rows).toEqual([{ body: 'kept off the device' }]);

  // A reload: the folder's handle comes back from IndexedDB, both targets still hold today's backup.
  await page.reload();
  await load(page);
  expect(await openWithTargets(page, { folder: true })).toEqual(ids);
  const second = await page.evaluate(async ([folderId, s3Id, name]) => {
    const keep = window.harness.keep!;
    const r = await keep.createBackup();
    return {
      actions: r.targets?.map((t) => `${t.target} ${t.action} ${t.name}`),
      folder: (await keep.listTargetBackups(folderId!)).map((b) => b.filename),
      s3: (await keep.listTargetBackups(s3Id!)).map((b) => b.filename),
      verified: await keep.verifyTargetBackup(s3Id!, name!),
    };
  }, [folderId, s3Id, name]);
  expect(second.actions).toEqual([`${folderId} existing ${name}`, `${s3Id} existing ${name}`]);
  expect(second.folder).toEqual([name]);
  expect(second.s3).toEqual([name]);
  expect(second.verified).toMatchObject({ ok: true, tables: 1 });

  // The origin's storage is cleared for real (as "Clear site data" does): OPFS, IndexedDB, everything.
  await page.evaluate(async () => {
    await window.harness.keep!.close();
    await window.harness.keep!.terminate();
  });
  const origin = new URL(page.url()).origin;
  const cdp = await context.newCDPSession(page);
  await cdp.send('Storage.clearDataForOrigin', { origin, storageTypes: 'all' });
  await page.reload();
  await load(page);
  const cleared = await page.evaluate(async () => ({
    opfs: await window.harness.listOpfs('/'),
    indexedDB: (await indexedDB.databases()).map((d) => d.name),
  }));
  expect(cleared).toEqual({ opfs: [], indexedDB: [] });
  // The picked folder was in OPFS, and its handle in IndexedDB: both gone.
  expect(await page.evaluate(() => window.cipherkeep.backupFolder('test').state())).toBe('no-folder');

  // A fresh start on the cleared origin: no database, but Swift still has the backup.
  expect(await openWithTargets(page, { folder: false, whenMissing: 'backups-only' })).toEqual([s3Id]);
  const restored = await page.evaluate(async ([s3Id]) => {
    const keep = window.harness.keep!;
    const before = await keep.databaseState();
    const listed = (await keep.listTargetBackups(s3Id!)).map((b) => b.filename);
    const r = await keep.restoreTargetBackup(s3Id!, listed[0]!);
    return { before, listed, r, after: await keep.databaseState(), rows: await keep.query('SELECT body FROM notes'), opfs: await window.harness.listOpfs('/') };
  }, [s3Id]);
  expect(restored.before).toBe('missing');
  expect(restored.listed).toEqual([name]);
  expect(restored.r.success).toBe(true);
  expect(restored.after).toBe('open');
  expect(restored.rows).toEqual([{ body: 'kept off the device' }]);
  expect(restored.opfs).toContain('app.db');
});

test('target failures reach the page as typed errors: a refused presign is TARGET_DENIED, a store answering 503 is TARGET_UNREACHABLE with its status', async ({ page }) => {
  test.skip(!store.env, store.skip ?? '');
  await page.route('**/presign-down', (route) => route.fulfill({ json: { url: `${new URL(page.url()).origin}/store-down`, headers: {} } }));
  await page.route('**/store-down*', (route) => route.fulfill({ status: 503, headers: { 'access-control-allow-origin': '*' }, body: '<Error><Code>ServiceUnavailable</Code></Error>' }));
  await load(page);
  const out = await page.evaluate(async () => {
    const { cipherkeep, harness } = window;
    const refuse = async () => { throw new cipherkeep.TargetDeniedError('signed out of the app'); };
    const down = async () => (await fetch('/presign-down')).json();
    const retry = { attempts: 2, baseDelayMs: 10 };
    const keep = await harness.open({
      cipher: { kdfIterations: 1000 },
      targets: [{ s3: { presign: refuse, prefix: 'a/', retry } }, { s3: { presign: down, prefix: 'b/', retry } }],
    });
    await keep.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)');
    const r = await keep.createBackup();
    const [a, b] = await keep.targetIds();
    const caught = (p: Promise<unknown>) => p.then(() => 'resolved', (e) => ({
      denied: e instanceof cipherkeep.TargetDeniedError, unreachable: e instanceof cipherkeep.TargetUnreachableError, code: e.code, status: e.status, message: e.message,
    }));
    return { success: r.success, targets: r.targets!.map((t) => `${t.action} ${t.errorCode}`), a: await caught(keep.listTargetBackups(a!)), b: await caught(keep.listTargetBackups(b!)) };
  });
  expect(out.success).toBe(true);
  expect(out.targets).toEqual(['failed TARGET_DENIED', 'failed TARGET_UNREACHABLE']);
  expect(out.a).toMatchObject({ denied: true, code: 'TARGET_DENIED', message: expect.stringContaining('signed out of the app') });
  expect(out.b).toMatchObject({ unreachable: true, code: 'TARGET_UNREACHABLE', status: 503 });
});
