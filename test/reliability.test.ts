/**
 * Faults, load and hostile input. Bounded for CI; `npm run torture` (TORTURE=1)
 * runs the long version: 100+ crash points per operation, 1000+ corruptions.
 * Each test prints its figures as a `figures:` line.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { BackupService, openDatabase, sqlcipher4, type Database } from '../src/node.ts';
import { fixtureCommand, tempDir } from './helpers.ts';
import { ledger, nativeApp, PASSWORD as LIVE_PASSWORD, TOTAL } from './native-app.ts';

const TORTURE = !!process.env.TORTURE;
const FAST = { kdfIterations: 1000 };
const PROFILE = { ...sqlcipher4, cipher: FAST };
const figures = (line: string) => console.log(`figures: ${line}`);

async function makeDb(file: string, password: string, rows = 20000) {
  const db = await openDatabase(file, { password, create: true, cipher: FAST });
  await db.exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); CREATE INDEX nb ON notes(body);
    WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < ${rows}) INSERT INTO notes (body) SELECT hex(randomblob(100)) FROM c`);
  await db.close();
}

async function opensWith(file: string, password: string): Promise<boolean> {
  try {
    const db = await openDatabase(file, { password, cipher: FAST });
    try {
      const [{ quick_check }] = (await db.query('PRAGMA quick_check')) as [{ quick_check: string }];
      assert.equal(quick_check, 'ok', `${file} opens with its password but fails quick_check`);
      return true;
    } finally {
      await db.close();
    }
  } catch (e) {
    if ((e as Error).name === 'WrongKeyError') return false;
    throw e;
  }
}

/** Starts the child, waits for "ready", kills it after `delayMs`. Returns whether it finished first. */
function crashAt(args: string[], env: Record<string, string>, delayMs: number): Promise<boolean> {
  const child = spawn(...fixtureCommand('crash-child.ts', args), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  return new Promise((resolve) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('ready') && !child.killed) setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.on('close', () => resolve(out.includes('{')));
  });
}

const service = (db: string, backups: string, password: string) => new BackupService({ databasePath: db, backupDir: backups, password, maxBackups: 3, keyProfile: PROFILE });

describe('reliability', () => {
  it('crash anywhere in createBackup, changePassword and restoreBackup', async () => {
    const points = TORTURE ? 110 : 8;
    const dir = tempDir('crash');
    const db = path.join(dir, 'app.db');
    const backups = path.join(dir, 'backups');
    const passwords = ['pw-a', 'pw-b'];
    await makeDb(db, passwords[0]!);
    let current = 0;
    const tally = { backup: 0, 'change-password': 0, restore: 0, finishedBeforeKill: 0 };
    for (let i = 0; i < points; i++) {
      for (const op of ['backup', 'change-password', 'restore'] as const) {
        const svc = service(db, backups, passwords[current]!);
        const latest = (await svc.getLatestBackup()) ?? (await svc.createBackup({ force: true }), await svc.getLatestBackup())!;
        const next = 1 - current;
        const finished = await crashAt([op, db, backups, latest.path], { CK_PASSWORD: passwords[current]!, CK_NEW_PASSWORD: passwords[next]! }, Math.random() * 400);
        tally[op]++;
        if (finished) tally.finishedBeforeKill++;
        // The database opens with exactly one of the two passwords, and passes quick_check.
        const withCurrent = await opensWith(db, passwords[current]!);
        const withNext = op === 'change-password' ? await opensWith(db, passwords[next]!) : false;
        assert.equal(Number(withCurrent) + Number(withNext), 1, `after ${op} crash ${i}: opens with exactly one password`);
        if (op === 'change-password') {
          // Re-running finishes the job: no backup under the old password remains.
          const rerun = await service(db, backups, passwords[current]!).changePassword({ password: passwords[next]! });
          assert.equal(rerun.success, true, rerun.error);
          current = next;
          for (const b of await service(db, backups, passwords[1 - current]!).listBackups()) {
            assert.equal((await service(db, backups, passwords[1 - current]!).verifyBackup(b.path)).ok, false, 'an old-password backup survived');
          }
        }
        // No visible backup fails verification; the next run clears leftover .tmp files.
        const svcNow = service(db, backups, passwords[current]!);
        for (const b of await svcNow.listBackups()) assert.equal((await svcNow.verifyBackup(b.path)).ok, true, `${b.filename} is visible but broken`);
        await svcNow.cleanupOldBackups();
        assert.deepEqual(fs.readdirSync(backups).filter((n) => n.endsWith('.tmp')), []);
        for (const f of fs.readdirSync(dir).filter((n) => n.includes('.pre-restore-'))) fs.rmSync(path.join(dir, f));
      }
    }
    figures(`crash points ${tally.backup + tally['change-password'] + tally.restore} (backup ${tally.backup}, change-password ${tally['change-password']}, restore ${tally.restore}); ${tally.finishedBeforeKill} finished before the kill; 0 invariant violations`);
  });

  it('every corruption of a backup is detected by verifyBackup and refused by restoreBackup', async () => {
    const cases = TORTURE ? 1000 : 100;
    const dir = tempDir('corrupt');
    const db = path.join(dir, 'app.db');
    await makeDb(db, 'pw', 3000);
    const svc = service(db, path.join(dir, 'backups'), 'pw');
    const good = fs.readFileSync((await svc.createBackup()).backupPath!);
    const otherDb = path.join(dir, 'other.db');
    await makeDb(otherDb, 'other', 3000);
    const other = fs.readFileSync((await service(otherDb, path.join(dir, 'other-backups'), 'other').createBackup()).backupPath!);
    const page = 4096;
    const pages = good.length / page;
    const rand = (n: number) => Math.floor(Math.random() * n);
    const kinds = {
      flip: () => { const b = Buffer.from(good); b[rand(b.length)]! ^= 1 << rand(8); return b; },
      flipMany: () => { const b = Buffer.from(good); for (let i = 0; i < 1 + rand(20); i++) b[rand(b.length)]! ^= 0xff; return b; },
      zeroPage: () => { const b = Buffer.from(good); b.fill(0, rand(pages) * page, (rand(pages) + 1) * page); const p = rand(pages); b.fill(0, p * page, (p + 1) * page); return b; },
      truncate: () => good.subarray(0, rand(good.length - 1)),
      truncatePages: () => good.subarray(0, (1 + rand(pages - 1)) * page),
      append: () => Buffer.concat([good, Buffer.from(crypto.getRandomValues(new Uint8Array(1 + rand(3 * page))))]),
      appendPage: () => Buffer.concat([good, good.subarray(rand(pages) * page, (rand(pages) + 1) * page).subarray(0, page)]),
      swapPages: () => { const b = Buffer.from(good); const [x, y] = [rand(pages), rand(pages)]; if (x === y) return kinds.flip(); b.copy(b, x * page, y * page, (y + 1) * page); return b; },
      otherDatabase: () => other,
    };
    const names = Object.keys(kinds) as Array<keyof typeof kinds>;
    const detected: Record<string, number> = {};
    const caseFile = path.join(dir, 'backups', 'backup_20200101_000000.db');
    const before = fs.readFileSync(db);
    for (let i = 0; i < cases; i++) {
      const kind = names[i % names.length]!;
      const bytes = kinds[kind]();
      if (Buffer.compare(bytes, good) === 0) continue; // a no-op mutation is not a corruption
      fs.writeFileSync(caseFile, bytes);
      const v = await svc.verifyBackup(caseFile);
      assert.equal(v.ok, false, `${kind} #${i} was not detected`);
      if (i % 10 === 0) {
        const r = await svc.restoreBackup(caseFile);
        assert.equal(r.success, false, `restore accepted ${kind} #${i}`);
      }
      detected[kind] = (detected[kind] ?? 0) + 1;
    }
    assert.deepEqual(fs.readFileSync(db), before, 'refused restores changed nothing');
    const total = Object.values(detected).reduce((a, b) => a + b, 0);
    figures(`corruptions tried ${total}, detected ${total} (100%): ${JSON.stringify(detected)}`);
  });

  it('backups under continuous writes each equal a committed state (ledger invariant), no writer fails, no commit lost', async () => {
    const dir = tempDir('load');
    const file = path.join(dir, 'ledger.db');
    const setup = await openDatabase(file, { password: 'pw', create: true, cipher: FAST, journalMode: TORTURE ? 'wal' : 'delete' });
    await setup.exec('CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL); CREATE TABLE log (id INTEGER PRIMARY KEY, writer INTEGER, n INTEGER)');
    await setup.exec('WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 100) INSERT INTO accounts (balance) SELECT 1000 FROM c');
    await setup.close();
    const writers: Database[] = [];
    for (let w = 0; w < 3; w++) writers.push(await openDatabase(file, { password: 'pw', cipher: FAST, busyTimeoutMs: 10_000 }));
    let stop = false;
    const commits = [0, 0, 0];
    const writing = writers.map(async (db, w) => {
      while (!stop) {
        const [a, b] = [1 + Math.floor(Math.random() * 100), 1 + Math.floor(Math.random() * 100)];
        const amount = Math.floor(Math.random() * 50);
        await db.transaction(async (tx) => {
          await tx.run('UPDATE accounts SET balance = balance - ? WHERE id = ?', [amount, a]);
          await tx.run('UPDATE accounts SET balance = balance + ? WHERE id = ?', [amount, b]);
          await tx.run('INSERT INTO log (writer, n) VALUES (?, ?)', [w, commits[w]! + 1]);
        });
        commits[w]!++;
        // Writers share this one JS thread with the backups. A timer alone is
        // not enough: when a transaction (sync fsyncs on this thread) takes
        // longer than the pause, Node runs the expired timers again and again
        // and never reaches the I/O phase — every fs promise of the backup
        // (and the lock's heartbeat) waits forever. That was the hang. Yield
        // to I/O first, as any app must, then pause.
        await new Promise((r) => setImmediate(r));
        await new Promise((r) => setTimeout(r, 3));
      }
    });
    const svc = service(file, path.join(dir, 'backups'), 'pw');
    const rounds = TORTURE ? 60 : 12;
    let violations = 0;
    try {
      for (let i = 0; i < rounds; i++) {
        const r = await svc.createBackup({ force: true });
        assert.equal(r.success, true, r.error);
        const copy = await openDatabase(r.backupPath!, { password: 'pw', cipher: FAST, readonly: true });
        const [{ sum }] = (await copy.query('SELECT sum(balance) AS sum FROM accounts')) as [{ sum: number }];
        const gaps = await copy.query('SELECT writer FROM log GROUP BY writer HAVING count(*) != max(n)');
        await copy.close();
        if (sum !== TOTAL || gaps.length) violations++;
      }
    } finally {
      stop = true;
      await Promise.allSettled(writing);
    }
    await Promise.all(writing);
    const check = writers[0]!;
    const [{ sum }] = (await check.query('SELECT sum(balance) AS sum FROM accounts')) as [{ sum: number }];
    const perWriter = (await check.query('SELECT writer, count(*) AS n FROM log GROUP BY writer ORDER BY writer')) as Array<{ writer: number; n: number }>;
    for (const w of writers) await w.close();
    assert.equal(sum, TOTAL);
    assert.deepEqual(perWriter.map((r) => r.n), commits, 'every commit a writer saw succeed is in the database');
    assert.equal(violations, 0);
    figures(`backups under load ${rounds}, commits ${commits.reduce((a, b) => a + b)}, invariant violations ${violations}`);
  });

  it('backups under a live native writer in another process (WAL and rollback journal): every backup a committed state, the app loses nothing', { timeout: 900_000 }, async () => {
    const rounds = TORTURE ? 30 : 3;
    const tally = { backups: 0, commits: 0, violations: 0 };
    for (const mode of ['wal', 'delete'] as const) {
      const dir = tempDir('livewriter');
      const db = path.join(dir, 'app.db');
      const app = nativeApp(db, mode, sqlcipher4, 'write');
      await app.ready;
      const svc = new BackupService({ databasePath: db, backupDir: path.join(dir, 'backups'), password: LIVE_PASSWORD, maxBackups: 2 });
      try {
        for (let i = 0; i < rounds; i++) {
          const r = await svc.createBackup({ force: true });
          assert.equal(r.success, true, r.error);
          const copy = await ledger(r.backupPath!, sqlcipher4);
          if (!copy.ok || copy.total !== TOTAL || !copy.gapless) tally.violations++;
          tally.backups++;
        }
      } finally {
        const { commits, errors } = await app.stop();
        assert.deepEqual(errors, [], 'the app never saw an error');
        tally.commits += commits;
        assert.deepEqual(await ledger(db, sqlcipher4), { ok: true, total: TOTAL, rows: commits, gapless: true }, 'every acknowledged commit is in the database');
      }
    }
    assert.equal(tally.violations, 0);
    figures(`backups under a live native writer ${tally.backups} (WAL and rollback), its commits ${tally.commits}, invariant violations ${tally.violations}`);
  });

  it('hostile input: symlinked and file backup dirs, huge and odd passwords, NUL in paths', async () => {
    const dir = tempDir('hostile');
    const db = path.join(dir, 'app.db');
    const huge = 'p'.repeat(1 << 20);
    await makeDb(db, huge, 100);
    const real = path.join(dir, 'real-backups');
    fs.mkdirSync(real);
    fs.symlinkSync(real, path.join(dir, 'linked'));
    const viaLink = await service(db, path.join(dir, 'linked'), huge).createBackup();
    assert.equal(viaLink.success, true, viaLink.error);
    assert.equal(fs.readdirSync(real).filter((n) => n.endsWith('.db')).length, 1, 'written through the link, inside it');
    fs.writeFileSync(path.join(dir, 'a-file'), 'x');
    assert.equal((await service(db, path.join(dir, 'a-file'), huge).createBackup()).success, false);
    assert.equal((await service(db, real, 'wrong').createBackup({ force: true })).errorCode, 'WRONG_KEY');
    assert.equal((await service(`${db}\0.x`, real, huge).createBackup({ force: true })).success, false);
    await assert.rejects(openDatabase(path.join(dir, 'odd.db'), { password: '', create: true }), /password/);
    const odd = "pa'ss\"wo\\rd; DROP TABLE x; --\u0000\u{1F600}";
    await makeDb(path.join(dir, 'odd.db'), odd, 10);
    assert.equal((await service(path.join(dir, 'odd.db'), path.join(dir, 'odd-b'), odd).createBackup()).success, true);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['a-file', 'app.db', 'app.db.backup-lock', 'linked', 'odd-b', 'odd.db', 'odd.db.backup-lock', 'real-backups'], 'nothing written outside the backup dirs and the lock directories');
  });
});
