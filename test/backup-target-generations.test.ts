/**
 * The backup service with incremental targets: full backups kept locally,
 * page-store generations on a second directory (FileTarget) and on S3 on the
 * real Swift. Each backup makes a generation per incremental target (only
 * changed pages go up), listed, verified and restored from the target; a
 * password change makes a full generation there and leaves no old-key
 * manifest or pack on a target it reaches.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from './timeouts.ts';
import { BackupService, NodeFileStore, openDatabase, sqlcipher4 } from '../src/node.ts';
import { FileTarget } from '../src/targets/file-target.ts';
import { S3Target } from '../src/targets/s3/index.ts';
import type { BackupTarget } from '../src/targets/target.ts';
import type { TargetSpec } from '../src/backup/targets.ts';
import { TargetStore } from '../src/backup/page-store/target-store.ts';
import { scanStore } from '../src/backup/page-store/state.ts';
import { tempDir, makeRowsDb, execOn, switchable } from './helpers.ts';
import { useSwift } from './swift.ts';

const FAST = { ...sqlcipher4, cipher: { kdfIterations: 1000 } };
const swift = await useSwift();
const run = `tg-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
let serial = 0;

function s3(prefix = `${run}/${serial++}`): S3Target {
  const env = swift.env!;
  return new S3Target({
    bucket: env.bucket, endpoint: env.endpoint, region: env.region,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    prefix, retry: { attempts: 3, baseDelayMs: 50 },
  });
}

if (!swift.skip) {
  after(async () => {
    const all = s3('');
    for (const o of await all.client.listObjects(`${run}/`)) await all.client.deleteObject(o.key);
  });
}

async function rows(file: string, password: string): Promise<unknown[]> {
  const db = await openDatabase(file, { password, cipher: FAST.cipher, readonly: true });
  try {
    return await db.query('SELECT count(*) AS n, sum(length(v)) AS s, max(v) AS m FROM t');
  } finally {
    await db.close();
  }
}

/** The store's files on the target, through a TargetStore as the service lays them out. */
async function storeOn(target: BackupTarget) {
  const store = new TargetStore(new NodeFileStore(), target, (d) => (d === '/store' ? 'backup.app.db.pages.' : null));
  return scanStore(store, '/store');
}

function setup(label: string, targets: (dir: string) => TargetSpec[]) {
  const dir = tempDir(label);
  const db = path.join(dir, 'app.db');
  const specs = targets(dir);
  const service = (password = 'pw') => new BackupService({ databasePath: db, password, backupDir: path.join(dir, 'backups'), keyProfile: FAST, targets: specs });
  return { dir, db, specs, service };
}

function cases(label: string, skip: string | undefined, target: (dir: string) => BackupTarget) {
  describe(`incremental generations on a target: ${label}`, { skip }, () => {
    it('full backups locally, generations on the target: only changed pages go up; list, verify and restore from the target', { timeout: 180_000 }, async () => {
      const { db, specs, service } = setup(`tg-${label}`, (dir) => [{ target: target(dir), incremental: true, generations: { keepLast: 5 } }]);
      const id = specs[0]!.target.id;
      await makeRowsDb(db);
      const before = await rows(db, 'pw');
      const first = await service().createBackup();
      assert.equal(first.success, true, first.error);
      assert.match(first.backupPath!, /\.db$/, 'the local backup is a full file');
      const g1 = first.targets![0]!;
      assert.equal(g1.success, true, g1.error);
      assert.deepEqual([g1.action, g1.generation, g1.full], ['uploaded', '1', true]);
      assert.ok(g1.pagesWritten! > 50, `the first generation writes every page (${g1.pagesWritten})`);

      await execOn(db, 'pw', "UPDATE t SET v = 'changed' WHERE id IN (7, 9000)");
      const after2 = await rows(db, 'pw');
      const second = await service().createBackup({ force: true });
      const g2 = second.targets![0]!;
      assert.equal(g2.success, true, g2.error);
      assert.deepEqual([g2.generation, g2.full], ['2', false]);
      assert.ok(g2.pagesWritten! >= 2 && g2.pagesWritten! <= 10, `only the changed pages go up (${g2.pagesWritten} of ${g1.pagesWritten})`);

      const list = await service().targets.listGenerations(id);
      assert.deepEqual(list.problems, []);
      assert.deepEqual(list.generations.map((g) => [g.generation, g.state]), [['2', 'ok'], ['1', 'ok']]);
      assert.equal((await service().targets.verifyGeneration(id, '1')).ok, true);
      assert.equal((await service().targets.verifyGeneration(id)).ok, true);

      const restored = await service().targets.restoreGeneration(id, '1');
      assert.equal(restored.success, true, restored.error);
      assert.deepEqual(await rows(db, 'pw'), before, 'generation 1 is the database before the change');
      const latest = await service().targets.restoreGeneration(id, 'latest');
      assert.equal(latest.success, true, latest.error);
      assert.deepEqual(await rows(db, 'pw'), after2);
    });

    it('a damaged pack on the target fails verify and restore, typed, and the database stays', { timeout: 120_000 }, async () => {
      const { db, specs, service } = setup(`tg-bad-${label}`, (dir) => [{ target: target(dir), incremental: true }]);
      const t = specs[0]!.target;
      await makeRowsDb(db, 'pw', 3000);
      assert.equal((await service().createBackup()).targets![0]!.success, true);
      const pack = (await storeOn(t)).packs[0]!;
      const name = `backup.app.db.pages.${pack.name}`;
      const bytes = await t.read(name, 0, pack.size);
      bytes[100] = bytes[100]! ^ 1;
      await t.put(name, bytes.length, async (o, l) => bytes.subarray(o, o + l));
      const v = await service().targets.verifyGeneration(t.id, '1');
      assert.equal(v.ok, false);
      const r = await service().targets.restoreGeneration(t.id, '1');
      assert.equal(r.success, false);
      assert.equal(r.errorCode, 'VERIFY_FAILED');
      assert.equal((await rows(db, 'pw') as Array<{ n: number }>)[0]!.n, 3000);
    });

    it('a password change makes a full generation there; no old-key manifest or pack remains', { timeout: 180_000 }, async () => {
      const { db, specs, service } = setup(`tg-pw-${label}`, (dir) => [{ target: target(dir), incremental: true }]);
      const t = specs[0]!.target;
      await makeRowsDb(db, 'pw', 5000);
      await service().createBackup();
      await execOn(db, 'pw', "UPDATE t SET v = 'x' WHERE id = 3");
      await service().createBackup({ force: true });
      const old = await storeOn(t);
      assert.equal(old.manifests.length, 2);
      const r = await service().changePassword({ password: 'new' });
      assert.equal(r.success, true, r.error);
      const g = r.targets![0]!;
      assert.equal(g.success, true, g.error);
      assert.equal(g.full, true);
      const now = await storeOn(t);
      assert.equal(now.manifests.length, 1, 'one generation, under the new key');
      const oldNames = new Set([...old.manifests, ...old.packs].map((f) => f.name));
      for (const f of [...now.manifests, ...now.packs]) assert.ok(!oldNames.has(f.name), `${f.name} is from before the change`);
      const named = new Set(now.manifests.flatMap((m) => m.header!.packs));
      for (const p of now.packs) assert.ok(named.has(p.name), `${p.name} is named by the new generation`);
      assert.equal((await service('new').targets.verifyGeneration(t.id)).ok, true);
      const list = await service('new').targets.listGenerations(t.id);
      assert.deepEqual(list.generations.map((x) => x.state), ['ok']);
    });
  });
}

describe('incremental generations on a target that missed a password change', () => {
  it('the next backup that reaches it makes a full generation and deletes every old-key manifest and pack', { timeout: 180_000 }, async () => {
    let down = false;
    const { db, specs, service } = setup('tg-missed', (dir) => {
      return [{ target: switchable(new FileTarget(new NodeFileStore(), path.join(dir, 'offsite'), { create: true }), () => down), incremental: true }];
    });
    const t = specs[0]!.target;
    await makeRowsDb(db, 'pw', 5000);
    assert.equal((await service().createBackup()).targets![0]!.success, true);
    const old = await storeOn(t);
    down = true;
    const changed = await service().changePassword({ password: 'new' });
    assert.equal(changed.targets![0]!.success, false);
    assert.equal(changed.targets![0]!.errorCode, 'TARGET_UNREACHABLE');
    down = false;
    assert.equal(old.manifests.length, (await storeOn(t)).manifests.length, 'the old-key generation is still there');
    const next = await service('new').createBackup({ force: true });
    const g = next.targets![0]!;
    assert.equal(g.success, true, g.error);
    assert.equal(g.full, true);
    const now = await storeOn(t);
    const oldNames = new Set([...old.manifests, ...old.packs].map((f) => f.name));
    for (const f of [...now.manifests, ...now.packs]) assert.ok(!oldNames.has(f.name), `${f.name} is from before the change`);
    assert.equal(now.manifests.length, 1);
    assert.equal((await service('new').targets.verifyGeneration(t.id)).ok, true);
  });
});

cases('FileTarget', undefined, (dir) => new FileTarget(new NodeFileStore(), path.join(dir, 'offsite'), { create: true }));
cases('S3 (Swift)', swift.skip, () => s3());
