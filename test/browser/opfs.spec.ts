/**
 * The browser build in real headless Chromium: the worker over OPFS, the
 * Comlink client, backups, two pages at once, quota, downloads, the example.
 * Each test gets a fresh context, so a fresh, empty OPFS.
 */
import { test, expect } from '@playwright/test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import NativeDatabase from '@signalapp/sqlcipher';
import { bytesOf, harness, nativeRows } from './native.ts';

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

test('create, verify, list, prune, purge and refresh in OPFS; the file is really encrypted', async ({ page }) => {
  await harness(page);
  const out = await page.evaluate(async () => {
    const keep = await window.harness.open({ maxBackups: 2 });
    await keep.exec("CREATE TABLE notes (body TEXT); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 2000) INSERT INTO notes SELECT 'private note ' || i FROM c");
    const first = await keep.createBackup();
    const again = await keep.createBackup();
    const verified = await keep.verifyBackup(first.backupPath!);
    await keep.createBackup({ force: true });
    await keep.createBackup({ force: true });
    const afterPrune = await keep.listBackups();
    const purged = await keep.purgeAndRefresh();
    const afterPurge = await keep.listBackups();
    await keep.close();
    return { first, again, verified, afterPrune, purged, afterPurge, db: await window.harness.readOpfs('/app.db'), files: await window.harness.listOpfs('/') };
  });
  expect(out.first.success).toBe(true);
  expect(out.again.existing).toBe(true);
  expect(out.verified).toMatchObject({ ok: true, tables: 1 });
  expect(out.afterPrune).toHaveLength(2);
  expect(out.afterPrune[0]!.verifiedAt).toBeTruthy();
  expect(out.afterPurge.map((b) => b.path)).toEqual([out.purged.backupPath]);
  const db = bytesOf(out.db);
  expect(Buffer.from(db.subarray(0, 16)).toString('latin1')).not.toBe('SQLite format 3\0');
  expect(Buffer.from(db).includes(Buffer.from('private note'))).toBe(false);
  expect(out.files).toEqual(['app.db', 'backups']); // no journals or temp files left once closed
  expect(nativeRows(db, 'pw', 'SELECT count(*) AS n FROM notes')).toEqual([{ n: 2000 }]);
});

test('data persists across a reload; a wrong password is a WrongKeyError in the page', async ({ page }) => {
  await harness(page);
  await page.evaluate(async () => {
    const keep = await window.harness.open();
    await keep.exec("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('survives reloads')");
    await keep.createBackup();
  });
  await page.reload();
  await expect(page.locator('#status')).toHaveText('ready');
  const out = await page.evaluate(async () => {
    let wrong = '';
    try {
      await window.harness.open({ password: 'nope', create: false });
    } catch (e) {
      wrong = `${(e as Error).name} ${e instanceof window.cipherkeep.WrongKeyError} ${(e as { code?: string }).code}`;
    }
    const keep = await window.harness.open({ create: false });
    return { wrong, rows: await keep.query('SELECT v FROM t'), backups: (await keep.listBackups()).length };
  });
  expect(out.wrong).toBe('WrongKeyError true WRONG_KEY');
  expect(out.rows).toEqual([{ v: 'survives reloads' }]);
  expect(out.backups).toBe(1);
});

test('20 new OPFS databases get 20 distinct random salts, each opening in native SQLCipher', async ({ page }) => {
  await harness(page);
  const files = await page.evaluate(async () => {
    const out: string[] = [];
    for (let i = 0; i < 20; i++) {
      // The key pragma is the first thing each new connection runs: where the zero salt appeared.
      const keep = await window.harness.open({ databasePath: `/salt-${i}.db`, password: `pw${i}` });
      await keep.exec(`CREATE TABLE t (v); INSERT INTO t VALUES (${i})`);
      await keep.close();
      await keep.terminate();
      out.push(await window.harness.readOpfs(`/salt-${i}.db`));
    }
    return out;
  });
  const salts = new Set(files.map((f) => Buffer.from(bytesOf(f).subarray(0, 16)).toString('hex')));
  expect(salts.size).toBe(20);
  expect(salts.has('00'.repeat(16))).toBe(false);
  files.forEach((f, i) => expect(nativeRows(bytesOf(f), `pw${i}`, 'SELECT v FROM t')).toEqual([{ v: i }]));
});

test('a database made by native SQLCipher opens from OPFS; an imported backup is verified first, and another database\'s is refused', async ({ page }) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cipherkeep-native-'));
  const native = new NativeDatabase(path.join(dir, 'n.db'));
  native.pragma("key = 'pw'");
  native.exec("CREATE TABLE t (v); INSERT INTO t VALUES ('made natively')");
  native.close();
  const made = b64(fs.readFileSync(path.join(dir, 'n.db')));
  fs.rmSync(dir, { recursive: true, force: true });
  await harness(page);
  const out = await page.evaluate(async (made) => {
    await window.harness.writeOpfs('/foreign.db', made);
    const foreign = await window.harness.open({ databasePath: '/foreign.db', create: false });
    const rows = await foreign.query('SELECT v FROM t');
    await foreign.close();
    const keep = await window.harness.open();
    await keep.exec('CREATE TABLE mine (x)');
    const bytes = Uint8Array.from(atob(made), (c) => c.charCodeAt(0));
    const foreignImport = await keep.importBackup(new Blob([bytes]));
    // A backup of this database, downloaded and imported back: accepted.
    const own = await keep.createBackup({ force: true });
    const ownBytes = Uint8Array.from(atob(await window.harness.readOpfs(own.backupPath!)), (c) => c.charCodeAt(0));
    await keep.purgeAndRefresh(); // a fresh backup replaces it: the import below is the second file
    const accepted = await keep.importBackup(new Blob([ownBytes]));
    const garbage = await keep.importBackup(new Blob([crypto.getRandomValues(new Uint8Array(8192))]));
    const backups = await window.harness.listOpfs('/backups');
    return { rows, foreignImport, accepted, garbage, backups };
  }, made);
  expect(out.rows).toEqual([{ v: 'made natively' }]);
  expect([out.foreignImport.success, out.foreignImport.errorCode]).toEqual([false, 'OTHER_DATABASE']);
  expect(out.accepted.success).toBe(true);
  expect(out.garbage.success).toBe(false);
  expect(out.garbage.error).toMatch(/wrong-key/);
  expect(out.backups.filter((n: string) => !n.startsWith('.'))).toContain(out.accepted.backupPath!.split('/').pop());
  expect(out.backups.filter((n: string) => !n.startsWith('.')).length).toBe(2);
});

test('WAL databases work over OPFS', async ({ page }) => {
  await harness(page);
  const out = await page.evaluate(async () => {
    const keep = await window.harness.open({ journalMode: 'wal' });
    await keep.exec("CREATE TABLE t (v); INSERT INTO t VALUES (1), (2)");
    const backup = await keep.createBackup();
    const mode = await keep.query('PRAGMA journal_mode');
    await keep.close();
    const again = await window.harness.open({ create: false });
    return { backup, mode, rows: await again.query('SELECT count(*) AS n FROM t'), verified: await again.verifyBackup(backup.backupPath!) };
  });
  expect(out.mode).toEqual([{ journal_mode: 'wal' }]);
  expect(out.backup.success).toBe(true);
  expect(out.rows).toEqual([{ n: 2 }]);
  expect(out.verified.ok).toBe(true);
});

test('two pages racing createBackup make exactly one daily backup', async ({ context }) => {
  const [a, b] = [await context.newPage(), await context.newPage()];
  await harness(a);
  await harness(b);
  await a.evaluate(async () => {
    const keep = await window.harness.open();
    await keep.exec("CREATE TABLE t (v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 20000) INSERT INTO t SELECT hex(randomblob(50)) FROM c");
  });
  await b.evaluate(async () => void (await window.harness.open({ create: false })));
  const race = () => window.harness.keep!.createBackup();
  const [ra, rb] = await Promise.all([a.evaluate(race), b.evaluate(race)]);
  expect(ra.success && rb.success).toBe(true);
  expect(ra.backupPath).toBe(rb.backupPath);
  expect([ra.existing, rb.existing].filter(Boolean)).toHaveLength(1);
  expect(await a.evaluate(() => window.harness.listOpfs('/backups'))).toHaveLength(1);
});

test('exhausting the storage quota mid-export fails cleanly and leaves no file', async ({ page }) => {
  await harness(page);
  const size = await page.evaluate(async () => {
    const keep = await window.harness.open();
    await keep.exec('CREATE TABLE b (x); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 12000) INSERT INTO b SELECT randomblob(1000) FROM c');
    return Number((await keep.query('SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()'))[0]!.n);
  });
  expect(size).toBeGreaterThan(8 << 20); // several export chunks
  const cdp = await page.context().newCDPSession(page);
  const origin = new URL(page.url()).origin;
  const usage = await page.evaluate(async () => (await navigator.storage.estimate()).usage ?? 0);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: usage + 2 * size + (1 << 20) });
  const out = await page.evaluate(async () => {
    let filled = 0;
    const result = await window.harness.keep!.createBackup({}, async (p) => {
      // After the first chunk, something else takes the rest of the quota.
      if (p.phase === 'export' && !filled) filled = await window.harness.fillQuota('/filler');
    });
    return { result, filled, backups: await window.harness.listOpfs('/backups') };
  });
  await cdp.send('Storage.overrideQuotaForOrigin', { origin });
  expect(out.filled).toBeGreaterThan(0);
  expect(out.result.success).toBe(false);
  expect(out.result.errorCode, out.result.error).toBe('STORAGE_FULL');
  expect(out.backups).toEqual([]);
});

test('a downloaded backup opens in native SQLCipher with the password', async ({ page }) => {
  await harness(page);
  await page.evaluate(async () => {
    const keep = await window.harness.open({ password: 'download pw' });
    await keep.exec("CREATE TABLE t (v); INSERT INTO t VALUES ('downloaded')");
    await keep.createBackup();
  });
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.evaluate(async () => {
      const keep = window.harness.keep!;
      await window.cipherkeep.downloadBackup(keep, (await keep.getLatestBackup())!.path, { picker: false });
    }),
  ]);
  const saved = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cipherkeep-dl-')), download.suggestedFilename());
  await download.saveAs(saved);
  expect(path.basename(saved)).toMatch(/^backup_\d{8}_\d{6}\.db$/);
  expect(nativeRows(new Uint8Array(fs.readFileSync(saved)), 'download pw', 'SELECT v FROM t')).toEqual([{ v: 'downloaded' }]);
  fs.rmSync(path.dirname(saved), { recursive: true, force: true });
});

test('a worker that fails to load rejects the call instead of hanging', async ({ page }) => {
  await harness(page);
  const message = await page.evaluate(async () => {
    try {
      await window.cipherkeep.openCipherkeep({ worker: '/no-such-worker.js', databasePath: '/x.db', backupDir: '/b', password: 'pw', create: true });
      return 'opened?';
    } catch (e) {
      return `${(e as Error).name}: ${(e as { code?: string }).code}`;
    }
  });
  expect(message).toBe('WorkerFailedError: WORKER_FAILED');
});

test('the main thread stays responsive during a 50 MB backup', async ({ page }) => {
  await harness(page);
  const out = await page.evaluate(async () => {
    const keep = await window.harness.open();
    await keep.exec('CREATE TABLE b (x)');
    for (let i = 0; i < 10; i++) {
      await keep.exec('WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 5000) INSERT INTO b SELECT randomblob(1000) FROM c');
    }
    const size = Number((await keep.query('SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()'))[0]!.n);
    const longTasks: number[] = [];
    const observer = new PerformanceObserver((list) => list.getEntries().forEach((e) => longTasks.push(e.duration)));
    observer.observe({ type: 'longtask', buffered: false });
    let ticks = 0;
    let worstGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
      ticks++;
    }, 10);
    const started = performance.now();
    const result = await keep.createBackup();
    const ms = performance.now() - started;
    clearInterval(timer);
    observer.disconnect();
    return { size, ms, ticks, worstGap, longest: Math.max(0, ...longTasks), longTasks: longTasks.length, success: result.success };
  });
  const report = { ...out, sizeMB: +(out.size / 2 ** 20).toFixed(1), mbPerSecond: +(out.size / 2 ** 20 / (out.ms / 1000)).toFixed(1) };
  fs.mkdirSync('test-results/browser', { recursive: true });
  fs.writeFileSync('test-results/browser/responsiveness.json', JSON.stringify(report, null, 2));
  console.log(`responsiveness: ${JSON.stringify(report)}`);
  expect(out.success).toBe(true);
  expect(out.size).toBeGreaterThan(50 * 2 ** 20);
  // The page kept running its own timers while the worker exported and verified.
  expect(out.ticks).toBeGreaterThan(out.ms / 100);
});

test('the example page works when clicked through', async ({ page }) => {
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  await page.goto('/example/');
  await page.fill('#password', 'example password');
  await page.click('#open');
  await expect(page.locator('#app')).toBeVisible();
  await page.fill('#note', 'remember the milk');
  await page.click('#add');
  await expect(page.locator('#note-count')).toHaveText('1');
  await page.click('#add-many');
  await expect(page.locator('#note-count')).toHaveText('5001');
  await page.click('#backup');
  await expect(page.locator('#backups tr')).toHaveCount(1);
  await page.click('#verify');
  await expect(page.locator('#log')).toContainText('verified');
  await expect(page.locator('#backups tr td').nth(3)).toHaveText('yes');
  await page.click('#purge-refresh');
  await expect(page.locator('#log')).toContainText('purged and refreshed');
  await page.fill('#new-password', 'second password');
  await page.click('#change-password');
  await expect(page.locator('#log')).toContainText('password changed');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  expect(download.suggestedFilename()).toMatch(/^backup_.*\.db$/);
  await page.click('#restore');
  await expect(page.locator('#log')).toContainText('restored from');
  await expect(page.locator('#note-count')).toHaveText('5001');
  await expect(page.locator('progress')).toHaveJSProperty('value', await page.locator('progress').evaluate((p: HTMLProgressElement) => p.max));
  fs.mkdirSync('test-results/browser', { recursive: true });
  await page.screenshot({ path: 'test-results/browser/example.png', fullPage: true });
});

test('closing the page at random moments during backups and password changes loses nothing', async ({ context }) => {
  const points = Number(process.env.TORTURE ? 40 : 6);
  let page = await context.newPage();
  await harness(page);
  await page.evaluate(async () => {
    const keep = await window.harness.open({ password: 'p0' });
    await keep.exec('CREATE TABLE b (x); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 8000) INSERT INTO b SELECT randomblob(1000) FROM c');
    await keep.createBackup();
  });
  let password = 'p0';
  for (let i = 0; i < points; i++) {
    const next = `p${i + 1}`;
    const op = i % 2 ? 'change' : 'backup';
    // Start the operation, then close the page (and so its worker) mid-flight.
    void page.evaluate(({ op, next }) => (op === 'change' ? window.harness.keep!.changePassword({ password: next }) : window.harness.keep!.createBackup({ force: true })), { op, next }).catch(() => {});
    await page.waitForTimeout(Math.random() * 300);
    await page.close();
    page = await context.newPage();
    await harness(page);
    const state = await page.evaluate(async ({ candidates }) => {
      const opened: string[] = [];
      for (const password of candidates) {
        try {
          const keep = await window.harness.open({ password, create: false });
          opened.push(password);
          await keep.close();
          await keep.terminate();
        } catch (e) {
          if ((e as Error).name !== 'WrongKeyError') throw e;
        }
      }
      return opened;
    }, { candidates: [password, next] });
    expect(state, `after closing during ${op} #${i}`).toHaveLength(1);
    password = state[0]!;
    const check = await page.evaluate(async ({ password, op, next }) => {
      const keep = await window.harness.open({ password, create: false });
      if (op === 'change' && password !== next) {
        // finish the interrupted change, as a user re-running it would
        const r = await keep.changePassword({ password: next });
        if (!r.success) throw new Error(r.error);
      }
      const quick = await keep.query('PRAGMA quick_check');
      await keep.cleanupOldBackups();
      const list = await keep.listBackups();
      const results = [];
      for (const b of list) results.push((await keep.verifyBackup(b.path)).ok);
      return { quick, results, files: await window.harness.listOpfs('/backups') };
    }, { password, op, next });
    if (op === 'change') password = next;
    expect(check.quick).toEqual([{ quick_check: 'ok' }]);
    expect(check.results.every(Boolean)).toBe(true);
    expect(check.files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
  }
});
