/**
 * The service's targets when backups are incremental on one side or the
 * other: local generations still reach every target (a full file to a full
 * target, a generation to an incremental one), one read-only snapshot of
 * the live database serves every target, and incremental targets keep the
 * daily rule as full targets do.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { describe, it } from './timeouts.ts';
import { BackupService, NodeFileStore, nodeBackupHost, openDatabase, sqlcipher4 } from '../src/node.ts';
import { FileTarget } from '../src/targets/file-target.ts';
import type { BackupTarget } from '../src/targets/target.ts';
import type { TargetSpec } from '../src/backup/targets.ts';
import type { BackupHost } from '../src/backup/types.ts';
import { TargetStore } from '../src/backup/page-store/target-store.ts';
import { scanStore } from '../src/backup/page-store/state.ts';
import { nativeQuery, passphraseKey, tempDir, makeRowsDb, execOn, switchable } from './helpers.ts';

const FAST = { ...sqlcipher4, cipher: { kdfIterations: 1000 } };
const DAY = 86_400_000;

async function rows(file: string, password = 'pw'): Promise<unknown[]> {
  const db = await openDatabase(file, { password, cipher: FAST.cipher, readonly: true });
  try {
    return await db.query('SELECT count(*) AS n, sum(length(v)) AS s, max(v) AS m FROM t');
  } finally {
    await db.close();
  }
}

/** The generations' manifests on a target, as the service lays them out. */
async function manifestsOn(target: BackupTarget): Promise<number[]> {
  const store = new TargetStore(new NodeFileStore(), target, (d) => (d === '/store' ? 'backup.app.db.pages.' : null));
  return (await scanStore(store, '/store')).manifests.map((m) => m.seq).sort((a, b) => a - b);
}

/** The live database's bytes as read through the service's files (main file only), by a counting host. */
function countingHost(db: string): { host: BackupHost; bytesRead: () => number } {
  let read = 0;
  class Counting extends NodeFileStore {
    override async readInto(p: string, offset: number, into: Uint8Array): Promise<number> {
      const n = await super.readInto(p, offset, into);
      if (p === db) read += n;
      return n;
    }
    override async copyPrefix(from: string, to: string, length: number) {
      if (from === db) read += length;
      return super.copyPrefix(from, to, length);
    }
  }
  return { host: { ...nodeBackupHost(), files: new Counting() }, bytesRead: () => read };
}

function setup(label: string, targets: (dir: string) => TargetSpec[], options: { incremental?: boolean; host?: (db: string) => BackupHost } = {}) {
  const dir = tempDir(label);
  const db = path.join(dir, 'app.db');
  const specs = targets(dir);
  const host = options.host?.(db);
  let now = Date.UTC(2026, 5, 1, 9);
  const service = (password = 'pw') => new BackupService({
    databasePath: db, password, backupDir: path.join(dir, 'backups'), keyProfile: FAST, targets: specs,
    incremental: options.incremental, clock: () => new Date(now), ...(host ? { host } : {}),
  });
  return { dir, db, specs, service, nextDay: () => (now += DAY) };
}

const fileTarget = (dir: string, name: string) => new FileTarget(new NodeFileStore(), path.join(dir, name), { create: true });
const digest = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

describe('local generations and targets', () => {
  it('each target gets what its spec says: a full file (verified, restorable, natively readable) or a generation', { timeout: 180_000 }, async () => {
    const { db, dir, specs, service, nextDay } = setup('it-local', (d) => [
      { target: fileTarget(d, 'full'), maxBackups: 3 },
      { target: fileTarget(d, 'gens'), incremental: true },
    ], { incremental: true });
    const [full, gens] = specs.map((s) => s.target) as [BackupTarget, BackupTarget];
    await makeRowsDb(db);
    const before = await rows(db);

    const first = await service().createBackup();
    assert.equal(first.success, true, first.error);
    assert.equal(first.generation, '1', 'the local backup is a generation');
    assert.equal(first.targets?.length, 2, 'both targets were sent to');
    const [f1, g1] = first.targets!;
    assert.deepEqual([f1!.success, f1!.action], [true, 'uploaded'], f1!.error);
    assert.match(f1!.name!, /^backup_\d{8}_\d{6}(_\d+)?\.db$/, 'a full backup file under a backup name');
    assert.deepEqual([g1!.success, g1!.action, g1!.generation, g1!.full], [true, 'uploaded', '1', true], g1!.error);
    assert.deepEqual((await service().targets.list(full.id)).map((b) => b.filename), [f1!.name]);
    assert.equal((await service().targets.verify(full.id, f1!.name!)).ok, true);
    assert.deepEqual(nativeQuery(path.join(dir, 'full', f1!.name!), [...passphraseKey('pw'), 'kdf_iter = 1000'], 'SELECT count(*) AS n FROM t'), [{ n: 20_000 }]);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'backups')).filter((n) => n.endsWith('.tmp') || n.endsWith('.db')), [], 'no staged snapshot and no full backup left locally');

    // Generations have no daily rule locally; the targets keep theirs.
    await execOn(db, 'pw', "UPDATE t SET v = 'changed' WHERE id IN (7, 9000)");
    const second = await service().createBackup();
    assert.equal(second.generation, '2');
    assert.deepEqual(second.targets!.map((t) => [t.action, t.generation]), [['existing', undefined], ['existing', '1']]);

    nextDay();
    const after = await rows(db);
    const third = await service().createBackup();
    assert.equal(third.generation, '3');
    const [f3, g3] = third.targets!;
    assert.deepEqual([f3!.action, g3!.action, g3!.generation, g3!.full], ['uploaded', 'uploaded', '2', false], `${f3!.error} ${g3!.error}`);
    assert.ok(g3!.pagesWritten! >= 2 && g3!.pagesWritten! <= 10, `only changed pages went up (${g3!.pagesWritten})`);

    const fromFile = await service().targets.restore(full.id, f3!.name!);
    assert.equal(fromFile.success, true, fromFile.error);
    assert.deepEqual(await rows(db), after);
    const older = await service().targets.restoreGeneration(gens.id, '1');
    assert.equal(older.success, true, older.error);
    assert.deepEqual(await rows(db), before, 'the target\'s first generation is the database before the change');

    // A password change reaches every target: only new-key backups remain.
    const changed = await service().changePassword({ password: 'new' });
    assert.equal(changed.success, true, changed.error);
    assert.deepEqual(changed.targets!.map((t) => [t.success, t.action]), [[true, 'uploaded'], [true, 'uploaded']], JSON.stringify(changed.targets));
    assert.equal(changed.targets![1]!.full, true);
    const left = await service('new').targets.list(full.id);
    assert.deepEqual(left.map((b) => b.filename), [changed.targets![0]!.name], 'old-password files are gone from the full target');
    assert.equal((await service('new').targets.verify(full.id, left[0]!.filename)).ok, true);
    assert.equal((await manifestsOn(gens)).length, 1, 'one generation, under the new key');
    assert.equal((await service('new').targets.verifyGeneration(gens.id)).ok, true);
  });

  it('a password change whose new generation fails leaves no old-password backup on any target', { timeout: 120_000 }, async () => {
    let broken = false;
    const { db, specs, service } = setup('it-local-pw', (d) => [{ target: fileTarget(d, 'full') }, { target: fileTarget(d, 'gens'), incremental: true }], {
      incremental: true,
      // Once broken, no snapshot can be staged in the backup directory (the rekey stages beside the database).
      host: (file) => {
        class Failing extends NodeFileStore {
          override async copyPrefix(from: string, to: string, length: number) {
            if (broken && path.dirname(to) === path.join(path.dirname(file), 'backups')) throw new Error('EIO: the disk failed');
            return super.copyPrefix(from, to, length);
          }
        }
        return { ...nodeBackupHost(), files: new Failing() };
      },
    });
    await makeRowsDb(db, 'pw', 3000);
    assert.deepEqual((await service().createBackup()).targets!.map((t) => t.success), [true, true]);
    broken = true;
    const r = await service().changePassword({ password: 'new' });
    assert.equal(r.success, false);
    assert.deepEqual(r.targets!.map((t) => [t.success, t.action]), [[true, 'purged'], [true, 'purged']], JSON.stringify(r.targets));
    assert.deepEqual(await service('new').targets.list(specs[0]!.target.id), []);
    assert.deepEqual(await manifestsOn(specs[1]!.target), []);
  });
});

describe('a damaged page the local generation does not read', () => {
  it('an unchanged page damaged in the live file (its HMAC kept) stops the full-file send before any upload', { timeout: 120_000 }, async () => {
    const { db, dir, specs, service, nextDay } = setup('it-rot', (d) => [{ target: fileTarget(d, 'full'), maxBackups: 5 }, { target: fileTarget(d, 'gens'), incremental: true }], { incremental: true });
    await makeRowsDb(db, 'pw', 3000);
    const first = await service().createBackup();
    assert.deepEqual(first.targets!.map((t) => t.action), ['uploaded', 'uploaded']);
    const fd = fs.openSync(db, 'r+');
    fs.writeSync(fd, Buffer.from([0xff ^ fs.readFileSync(db)[2 * 4096 + 100]!]), 0, 1, 2 * 4096 + 100); // page 3's body, not its trailer
    fs.closeSync(fd);
    nextDay();
    const r = await service().createBackup();
    assert.equal(r.success, true, 'the local generation reuses its own good copy of the page');
    const [full, gens] = r.targets!;
    assert.deepEqual([full!.success, full!.errorCode], [false, 'VERIFY_FAILED']);
    assert.match(full!.error!, /snapshot failed verification/);
    assert.equal(gens!.success, true, gens!.error);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'full')).filter((n) => !n.startsWith('.')), [first.targets![0]!.name], 'nothing was put');
    assert.equal((await service().targets.verifyGeneration(specs[1]!.target.id)).ok, true);
  });
});

describe('one snapshot of the live database per createBackup', () => {
  for (const incremental of [false, true]) {
    it(`local ${incremental ? 'generations' : 'full backups'}, a full and an incremental target: the live file is read once, never written`, { timeout: 120_000 }, async () => {
      let counting!: ReturnType<typeof countingHost>;
      const { db, service: svc } = setup('it-once', (d) => [{ target: fileTarget(d, 'full') }, { target: fileTarget(d, 'gens'), incremental: true }], {
        incremental, host: (file) => (counting = countingHost(file)).host,
      });
      await makeRowsDb(db);
      const size = fs.statSync(db).size;
      const before = digest(db);
      const mtime = fs.statSync(db).mtimeMs;
      const r = await svc().createBackup();
      assert.equal(r.success, true, r.error);
      assert.deepEqual(r.targets!.map((t) => [t.success, t.action]), [[true, 'uploaded'], [true, 'uploaded']], JSON.stringify(r.targets));
      const read = counting.bytesRead();
      assert.ok(read >= size && read < 1.5 * size, `the live database was read once (${read} bytes read of a ${size}-byte file)`);
      assert.equal(digest(db), before, 'the live database is unchanged');
      assert.equal(fs.statSync(db).mtimeMs, mtime);
      for (const side of ['-wal', '-journal', '-shm']) assert.equal(fs.existsSync(`${db}${side}`), false, `no ${side} was made beside it`);
    });
  }
});

describe('incremental targets keep the daily rule', () => {
  it('today\'s generation is not made twice; a target that missed today\'s run gets it from the existing backup; the same pages never twice', { timeout: 180_000 }, async () => {
    let down = false;
    const { db, specs, service, nextDay } = setup('it-daily', (d) => {
      return [{ target: switchable(fileTarget(d, 'gens'), () => down), incremental: true }];
    });
    const t = specs[0]!.target;
    await makeRowsDb(db, 'pw', 5000);
    down = true;
    const missed = await service().createBackup();
    assert.equal(missed.success, true);
    assert.equal(missed.targets![0]!.errorCode, 'TARGET_UNREACHABLE');
    down = false;

    const caughtUp = await service().createBackup();
    assert.equal(caughtUp.existing, true, 'today\'s local backup is reused');
    assert.deepEqual([caughtUp.targets![0]!.action, caughtUp.targets![0]!.generation], ['uploaded', '1'], caughtUp.targets![0]!.error);

    await execOn(db, 'pw', "UPDATE t SET v = 'x' WHERE id = 3");
    const again = await service().createBackup();
    assert.equal(again.existing, true);
    assert.deepEqual([again.targets![0]!.success, again.targets![0]!.action, again.targets![0]!.generation], [true, 'existing', '1']);
    assert.deepEqual(await manifestsOn(t), [1], 'no second generation today');

    nextDay();
    const tomorrow = await service().createBackup();
    assert.equal(tomorrow.existing, undefined);
    assert.deepEqual([tomorrow.targets![0]!.action, tomorrow.targets![0]!.generation], ['uploaded', '2']);

    // Forced, with nothing changed: a new local file, but the target's newest generation holds these pages already.
    const forced = await service().createBackup({ force: true });
    assert.equal(forced.success, true, forced.error);
    assert.deepEqual([forced.targets![0]!.success, forced.targets![0]!.action, forced.targets![0]!.generation, forced.targets![0]!.pagesWritten], [true, 'existing', '2', 0]);
    assert.deepEqual(await manifestsOn(t), [1, 2]);

    await execOn(db, 'pw', "UPDATE t SET v = 'y' WHERE id = 4");
    const forcedChanged = await service().createBackup({ force: true });
    assert.deepEqual([forcedChanged.targets![0]!.action, forcedChanged.targets![0]!.generation], ['uploaded', '3'], 'forced, with a change: a generation today');
    assert.deepEqual(await manifestsOn(t), [1, 2, 3]);
  });
});
