/**
 * The backup service's incremental backups (page-store generations), run
 * against every host: made under the service's locks from the read-only
 * snapshot, listed, verified, restored (older generations too, after the
 * database is lost), rolled-back stores refused, old-key generations gone
 * after a password change, key profiles with sidecars refused.
 */
import { describe, it } from '../timeouts.ts';
import assert from 'node:assert/strict';
import { BackupService, referenceApp, sqlcipher4, type BackupHost, type BackupServiceOptions, type FileStore } from '../../src/index.ts';

export interface IncrementalTestHost {
  host: BackupHost;
  /** A new, empty directory. */
  freshDir(): Promise<string>;
}

const FAST = { kdfIterations: 1000 };

export function incrementalBackupContract(label: string, t: IncrementalTestHost): void {
  const { host } = t;
  const files: FileStore = host.files;

  async function setup(extra: Partial<BackupServiceOptions> = {}, rows = 2000) {
    const dir = await t.freshDir();
    const databasePath = files.join(dir, 'app.db');
    const db = await host.open(databasePath, { password: 'pw', create: true, cipher: FAST });
    await db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)');
    await db.exec(`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < ${rows}) INSERT INTO notes (body) SELECT 'note ' || i || ' ' || hex(randomblob(100)) FROM c`);
    await db.close();
    let now = Date.parse('2026-03-01T10:00:00Z');
    const options = {
      databasePath, password: 'pw', backupDir: files.join(dir, 'backups'), clock: () => new Date((now += 60_000)), host,
      keyProfile: { ...sqlcipher4, cipher: FAST }, incremental: true, ...extra,
    } as BackupServiceOptions;
    return { dir, databasePath, options, svc: new BackupService(options) };
  }

  async function rows(databasePath: string, password = 'pw', sql = 'SELECT count(*) AS n, max(body) AS top FROM notes'): Promise<unknown[]> {
    const db = await host.open(databasePath, { password, cipher: FAST, readonly: true });
    try {
      return await db.query(sql);
    } finally {
      await db.close();
    }
  }

  async function change(databasePath: string, sql: string, password = 'pw'): Promise<void> {
    const db = await host.open(databasePath, { password, cipher: FAST });
    await db.exec(sql);
    await db.close();
  }

  const storeOf = (o: BackupServiceOptions) => files.join(o.backupDir, `backup.${files.basename(o.databasePath)}.pages`);
  const listNames = async (dir: string, prefix = '') => (await files.list(dir, prefix)).map((f) => f.name).sort();

  describe(`incremental backups in the service: ${label}`, () => {
    it('makes generations that cost what changed; restores an older one and the newest, byte for byte what the database held', async () => {
      const { svc, databasePath, options } = await setup();
      const before = await rows(databasePath);
      const first = await svc.createBackup();
      assert.equal(first.success, true, first.error);
      assert.equal(first.generation, '1');
      assert.equal(first.full, true);
      assert.equal(first.backupPath, storeOf(options));
      assert.deepEqual(await listNames(options.backupDir, 'backup_'), [], 'no full backup file, no staged snapshot left');

      await change(databasePath, "UPDATE notes SET body = 'changed' WHERE id = 7");
      const after = await rows(databasePath);
      const second = await svc.createBackup({ onProgress: () => {} });
      assert.equal(second.success, true, second.error);
      assert.equal(second.generation, '2');
      assert.equal(second.full, false);
      assert.ok(second.pagesWritten! > 0 && second.pagesWritten! <= 4, `pages written: ${second.pagesWritten}`);
      assert.ok(second.sizeBytes < first.sizeBytes / 5, `${second.sizeBytes} of ${first.sizeBytes}`);

      const list = await svc.listGenerations();
      assert.deepEqual(list.problems, []);
      assert.deepEqual(list.generations.map((g) => [g.generation, g.state, g.full]), [['2', 'ok', false], ['1', 'ok', true]]);
      assert.deepEqual(await svc.verifyGeneration('1'), { ok: true, generation: '1', pages: list.generations[1]!.pageCount, bytes: list.generations[1]!.databaseBytes, problems: [] });

      const r1 = await svc.restoreGeneration('1');
      assert.equal(r1.success, true, r1.error);
      assert.equal(r1.generation, '1');
      assert.deepEqual(await rows(databasePath), before);
      assert.ok(r1.preRestorePath && (await files.stat(r1.preRestorePath)), 'the replaced database is kept');
      assert.deepEqual(await rows(r1.preRestorePath!), after);

      const latest = await svc.restoreGeneration('latest');
      assert.equal(latest.success, true, latest.error);
      assert.equal(latest.generation, '2');
      assert.deepEqual(await rows(databasePath), after);
    });

    it('restores after the database is lost, with only the password (the salt noted in the store)', async () => {
      const { svc, databasePath } = await setup();
      const before = await rows(databasePath);
      assert.equal((await svc.createBackup()).success, true);
      await files.remove(databasePath);
      assert.equal((await svc.listGenerations()).generations.length, 1);
      const r = await svc.restoreGeneration('1');
      assert.equal(r.success, true, r.error);
      assert.equal(r.preRestorePath, undefined);
      assert.deepEqual(await rows(databasePath), before);
    });

    it('a damaged pack fails verify and restore, and the database is untouched', async () => {
      const { svc, databasePath, options } = await setup();
      assert.equal((await svc.createBackup()).success, true);
      const store = storeOf(options);
      const pack = (await listNames(store, 'pack-'))[0]!;
      const bytes = await files.read(files.join(store, pack), 0, 1 << 30);
      bytes[5000] = bytes[5000]! ^ 1;
      const w = await files.create(files.join(store, `${pack}.x`));
      await w.write(bytes);
      await w.close();
      await files.rename(files.join(store, `${pack}.x`), files.join(store, pack));
      await change(databasePath, "UPDATE notes SET body = 'current' WHERE id = 1");
      const current = await rows(databasePath);

      const v = await svc.verifyGeneration('1');
      assert.equal(v.ok, false);
      const r = await svc.restoreGeneration('1');
      assert.equal(r.success, false);
      assert.equal(r.errorCode, 'VERIFY_FAILED');
      assert.deepEqual(await rows(databasePath), current);
    });

    it('a store rolled back as a whole is refused against the anchor kept beside the database', async () => {
      const { svc, databasePath, options } = await setup();
      assert.equal((await svc.createBackup()).success, true);
      await change(databasePath, "UPDATE notes SET body = 'two' WHERE id = 2");
      assert.equal((await svc.createBackup()).success, true);
      // Roll the store back to generation 1: its newest manifest deleted (what a restored bucket snapshot looks like).
      assert.equal(await files.remove(files.join(storeOf(options), 'gen-0000000002.manifest')), true);
      const list = await svc.listGenerations();
      assert.ok(list.problems.some((p) => p.includes('rolled back')), list.problems.join('; '));
      const r = await svc.createBackup();
      assert.equal(r.success, false);
      assert.equal(r.errorCode, 'CORRUPT');
      assert.match(r.error!, /rolled back/);
      assert.equal((await svc.restoreGeneration('1')).success, false);
    });

    it('an anchor temporary file left by a run that died is removed by the next', async () => {
      const { svc, databasePath } = await setup();
      const left = `${databasePath}.pages-anchor.deadrun1.tmp`;
      const w = await files.create(left);
      await w.write(new TextEncoder().encode('{"half":'));
      await w.close();
      assert.equal((await svc.createBackup()).success, true);
      assert.equal(await files.stat(left), null);
      assert.ok(await files.stat(`${databasePath}.pages-anchor`));
    });

    it('retention over generations keeps the newest N', async () => {
      const { svc, databasePath } = await setup({ generations: { keepLast: 2 } });
      for (let i = 0; i < 4; i++) {
        await change(databasePath, `UPDATE notes SET body = 'round ${i}' WHERE id = ${10 + i}`);
        assert.equal((await svc.createBackup()).success, true);
      }
      assert.deepEqual((await svc.listGenerations()).generations.map((g) => g.generation), ['4', '3']);
    });

    it('after changePassword the next generation is full and no old-key generation or pack remains', async () => {
      const { svc, databasePath, options } = await setup();
      assert.equal((await svc.createBackup()).success, true);
      await change(databasePath, "UPDATE notes SET body = 'x' WHERE id = 3");
      assert.equal((await svc.createBackup()).success, true);
      const store = storeOf(options);
      const oldFiles = await listNames(store);
      const r = await svc.changePassword({ password: 'n3w' });
      assert.equal(r.success, true, r.error);
      assert.equal(r.full, true);
      assert.equal(r.generation, '3');
      const now = await listNames(store);
      // The salt note may stay: a rekey by replacement can keep the file's salt (it is no secret: every SQLCipher file starts with it).
      const left = now.filter((n) => oldFiles.includes(n) && !n.startsWith('salt-'));
      assert.deepEqual(left, [], `old-key files left: ${left}`);
      assert.ok(now.some((n) => n.startsWith('pack-')) && now.includes('gen-0000000003.manifest'));
      assert.deepEqual((await svc.listGenerations()).generations.map((g) => [g.generation, g.state]), [['3', 'ok']]);
      const asOld = new BackupService({ ...options, password: 'pw' } as BackupServiceOptions);
      assert.deepEqual((await asOld.listGenerations()).generations.filter((g) => g.state === 'ok'), []);
      const restored = await svc.restoreGeneration('3');
      assert.equal(restored.success, true, restored.error);
      assert.equal(((await rows(databasePath, 'n3w')) as Array<{ n: number }>)[0]!.n, 2000);
    });

    it('a full-backup service deletes the generations on changePassword', async () => {
      const { svc, databasePath, options } = await setup({ incremental: false });
      assert.equal((await svc.createBackup({ incremental: true })).success, true);
      const full = await svc.createBackup();
      assert.equal(full.success, true);
      assert.equal(full.generation, undefined);
      const r = await svc.changePassword({ password: 'n3w' });
      assert.equal(r.success, true, r.error);
      assert.deepEqual((await listNames(storeOf(options))).filter((n) => n.startsWith('gen-') || n.startsWith('pack-')), []);
      assert.equal(await files.stat(`${databasePath}.pages-anchor`), null);
      assert.deepEqual((await svc.listGenerations()).generations, []);
    });

    it('a full-backup service deletes the generations on changePassword even when the anchor is gone', async () => {
      const { svc, databasePath, options } = await setup({ incremental: false });
      assert.equal((await svc.createBackup({ incremental: true })).success, true);
      assert.equal(await files.remove(`${databasePath}.pages-anchor`), true);
      const r = await svc.changePassword({ password: 'n3w' });
      assert.equal(r.success, true, r.error);
      assert.deepEqual((await listNames(storeOf(options))).filter((n) => n.startsWith('gen-') || n.startsWith('pack-')), []);
    });

    it('key profiles that keep sidecars are refused with INVALID_ARGUMENT, nothing written', async () => {
      const { svc, options } = await setup({ keyProfile: { ...referenceApp, cipher: FAST } });
      const r = await svc.createBackup();
      assert.equal(r.success, false);
      assert.equal(r.errorCode, 'INVALID_ARGUMENT');
      assert.match(r.error!, /\.salt/);
      assert.equal(await files.stat(storeOf(options)), null);
      assert.deepEqual(await listNames(options.backupDir, 'backup_'), []);
    });

    it('refuses to restore over a database in use (IN_USE)', { skip: !files.inUse && 'this host cannot tell' }, async () => {
      const { svc, databasePath } = await setup();
      assert.equal((await svc.createBackup()).success, true);
      const db = await host.open(databasePath, { password: 'pw', cipher: FAST });
      try {
        const r = await svc.restoreGeneration('1');
        assert.equal(r.success, false);
        assert.equal(r.errorCode, 'IN_USE');
      } finally {
        await db.close();
      }
    });
  });
}
