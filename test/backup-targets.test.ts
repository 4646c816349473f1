/**
 * The backup service with targets: each verified backup goes to a second
 * directory (FileTarget) and to S3 on the real Swift (scripts/swift/swift.sh),
 * is read back and checked there, kept by each target's retention, replaced
 * on every target by purge-and-refresh and a password change, and restored,
 * imported and verified from any of them. A target that fails never blocks
 * the others or the local backup.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from './timeouts.ts';
import { BackupService, NodeFileStore, openDatabase, referenceApp, sqlcipher4 } from '../src/node.ts';
import { FileTarget } from '../src/targets/file-target.ts';
import { S3Target } from '../src/targets/s3/index.ts';
import type { BackupTarget } from '../src/targets/target.ts';
import type { TargetSpec } from '../src/backup/targets.ts';
import { readableWith } from '../src/backup/remote-check.ts';
import { deriveKey, resolveSettings } from '../src/engine/cipher.ts';
import { startFaultProxy } from './fixtures/fault-proxy.ts';
import { nativeQuery, tempDir, withNative } from './helpers.ts';
import { pbkdf2Sync } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { swift, useSwift } from './swift.ts';

const FAST = { ...sqlcipher4, cipher: { kdfIterations: 1000 } };
const store = await useSwift();
const skipS3 = store.skip;
const run = `svc-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
let serial = 0;

function s3(extra: Partial<ConstructorParameters<typeof S3Target>[0]> = {}): S3Target {
  const env = store.env!;
  return new S3Target({
    bucket: env.bucket, endpoint: env.endpoint, region: env.region,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    prefix: `${run}/${serial++}`, retry: { attempts: 2, baseDelayMs: 20 }, ...extra,
  });
}

if (!skipS3) {
  after(async () => {
    const all = s3({ prefix: '' });
    for (const o of await all.client.listObjects(`${run}/`)) await all.client.deleteObject(o.key);
  });
}
if (store.started) after(() => swift('stop'));

async function makeDb(file: string, password = 'pw', rows = 5000): Promise<void> {
  const db = await openDatabase(file, { password, create: true, cipher: FAST.cipher });
  await db.exec(`CREATE TABLE t (v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < ${rows}) INSERT INTO t SELECT 'row ' || i FROM c`);
  await db.close();
}

async function rowCount(file: string, password: string): Promise<number> {
  const db = await openDatabase(file, { password, cipher: FAST.cipher, readonly: true });
  try {
    return Number((await db.query<{ n: number }>('SELECT count(*) AS n FROM t'))[0]!.n);
  } finally {
    await db.close();
  }
}

/** A port nobody listens on. */
async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function setup(label: string, targets: (dir: string) => TargetSpec[], extra: { clock?: () => Date; maxBackups?: number } = {}) {
  const dir = tempDir(label);
  const db = path.join(dir, 'app.db');
  const specs = targets(dir);
  const service = (password = 'pw') => new BackupService({
    databasePath: db, password, backupDir: path.join(dir, 'backups'), keyProfile: FAST, targets: specs, ...extra,
  });
  return { dir, db, specs, service };
}

const names = async (t: BackupTarget) => (await t.list('backup_')).map((o) => o.name);

describe('the backup service with targets', () => {
  it('a backup goes to every target, reads back byte for byte; an unreachable target fails alone, typed', { timeout: 60_000 }, async () => {
    const port = await closedPort();
    const { db, specs, service } = setup('tgt-send', (dir) => [
      { target: new FileTarget(new NodeFileStore(), path.join(dir, 'offsite'), { create: true }) },
      { target: new S3Target({ bucket: 'b', endpoint: `http://127.0.0.1:${port}`, credentials: { accessKeyId: 'a', secretAccessKey: 'never-shown' }, retry: { attempts: 1 } }) },
    ]);
    await makeDb(db);
    const r = await service().createBackup();
    assert.equal(r.success, true, r.error);
    assert.equal(r.targets?.length, 2);
    const [file, dead] = r.targets!;
    assert.deepEqual({ ...file, target: undefined }, { target: undefined, success: true, action: 'uploaded', name: path.basename(r.backupPath!), sizeBytes: r.sizeBytes, deleted: 0 });
    assert.deepEqual(await (specs[0]!.target as FileTarget).read(file!.name!, 0, r.sizeBytes), new Uint8Array(fs.readFileSync(r.backupPath!)));
    assert.equal(dead!.success, false);
    assert.equal(dead!.errorCode, 'TARGET_UNREACHABLE');
    assert.ok(!dead!.error!.includes('never-shown') && !dead!.error!.includes('pw'), dead!.error);
    // Same day: the target's backup is today's, nothing goes up again.
    const again = await service().createBackup();
    assert.equal(again.existing, true);
    assert.equal(again.targets![0]!.action, 'existing');
    assert.equal(again.targets![1]!.errorCode, 'TARGET_UNREACHABLE');
  });

  it('each target keeps its own count and age; list and latest per target', { timeout: 60_000 }, async () => {
    let now = new Date('2026-03-01T10:00:00Z');
    const { db, specs, service } = setup('tgt-retain', (dir) => [
      { target: new FileTarget(new NodeFileStore(), path.join(dir, 'weekly'), { create: true }), maxBackups: 3, maxAgeDays: 30 },
      { target: new FileTarget(new NodeFileStore(), path.join(dir, 'young'), { create: true }), maxBackups: 10, maxAgeDays: 2 },
    ], { clock: () => now });
    await makeDb(db);
    for (let day = 0; day < 5; day++) {
      now = new Date(Date.UTC(2026, 2, 1 + day, 10));
      const r = await service().createBackup();
      assert.equal(r.success, true, r.error);
      assert.ok(r.targets!.every((t) => t.success && t.action === 'uploaded'), JSON.stringify(r.targets));
    }
    const svc = service();
    assert.equal((await svc.listBackups()).length, 1, 'local: the default 1');
    assert.deepEqual(await names(specs[0]!.target), ['backup_20260303_100000.db', 'backup_20260304_100000.db', 'backup_20260305_100000.db']);
    assert.deepEqual(await names(specs[1]!.target), ['backup_20260303_100000.db', 'backup_20260304_100000.db', 'backup_20260305_100000.db']);
    now = new Date(Date.UTC(2026, 2, 8, 10)); // everything but the newest is older than 2 days now
    const pruned = await svc.targets.prune();
    assert.deepEqual(pruned.map((p) => [p.action, p.deleted]), [['purged', 0], ['purged', 2]]);
    const listed = await svc.targets.list(specs[1]!.target.id);
    assert.deepEqual(listed.map((b) => [b.filename, b.createdAt, b.target]), [['backup_20260305_100000.db', '2026-03-05T10:00:00.000Z', specs[1]!.target.id]]);
    assert.equal((await svc.targets.latest(specs[0]!.target.id))?.filename, 'backup_20260305_100000.db');
    await assert.rejects(svc.targets.list('nope'), { code: 'INVALID_ARGUMENT' });
  });

  it('a copy damaged on the target is caught by the read-back check, reported and removed', { timeout: 60_000 }, async () => {
    const { db, specs, service } = setup('tgt-damage', (dir) => [{ target: damaging(new FileTarget(new NodeFileStore(), path.join(dir, 'offsite'), { create: true }), path.join(dir, 'offsite')) }]);
    await makeDb(db);
    const r = await service().createBackup();
    assert.equal(r.success, true, 'the local backup stands');
    assert.equal(r.targets![0]!.success, false);
    assert.equal(r.targets![0]!.errorCode, 'VERIFY_FAILED');
    assert.match(r.targets![0]!.error!, /read-back verification failed: page \d+ of backup_\S+ on file:\S+ failed its HMAC check/);
    assert.deepEqual(await names(specs[0]!.target), []);
  });

  it('restore, import and verify from a target when the device lost everything', { timeout: 60_000 }, async () => {
    const { dir, db, specs, service } = setup('tgt-restore', (d) => [{ target: new FileTarget(new NodeFileStore(), path.join(d, 'offsite'), { create: true }) }]);
    await makeDb(db, 'pw', 3000);
    const r = await service().createBackup();
    assert.equal(r.targets![0]!.action, 'uploaded');
    const id = specs[0]!.target.id;
    const name = r.targets![0]!.name!;
    fs.rmSync(db);
    fs.rmSync(path.join(dir, 'backups'), { recursive: true });
    const svc = service();
    assert.deepEqual(await svc.listBackups(), []);
    const checked = await svc.targets.verify(id, name);
    assert.equal(checked.ok, true, JSON.stringify(checked));
    const phases = new Set<string>();
    const restored = await svc.targets.restore(id, name, { onProgress: (p) => void phases.add(p.phase) });
    assert.equal(restored.success, true, restored.error);
    assert.ok(phases.has('download'), [...phases].join());
    assert.equal(await rowCount(db, 'pw'), 3000);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'backups')).filter((f) => !f.startsWith('.')), [], 'no temporary file left');
    const imported = await svc.targets.import(id, name);
    assert.equal(imported.success, true, imported.error);
    assert.ok(fs.readFileSync(imported.backupPath!).equals(fs.readFileSync(path.join(dir, 'offsite', name))));
    assert.equal((await svc.listBackups()).length, 1);
    // A wrong password: verification says so, restore refuses, nothing changes.
    assert.equal((await service('wrong').targets.verify(id, name)).ok, false);
    const refused = await service('wrong').targets.restore(id, name);
    assert.equal(refused.success, false);
    assert.equal(refused.errorCode, 'VERIFY_FAILED');
    const missing = await svc.targets.restore(id, 'backup_20200101_000000.db');
    assert.equal(missing.errorCode, 'TARGET_NOT_FOUND');
    await assert.rejects(svc.targets.verify(id, 'backup_20200101_000000.db'), { code: 'TARGET_NOT_FOUND' });
  });

  it('two databases sharing a target and a second: neither upload replaces the other; each lists only its own', { timeout: 60_000 }, async () => {
    const dir = tempDir('tgt-shared');
    const now = new Date('2026-06-01T10:00:00Z');
    const shared = new FileTarget(new NodeFileStore(), path.join(dir, 'offsite'), { create: true });
    const service = (name: string) => new BackupService({
      databasePath: path.join(dir, `${name}.db`), password: 'pw', backupDir: path.join(dir, `${name}-backups`), keyProfile: FAST,
      clock: () => now, targets: [{ target: shared, maxBackups: 1 }],
    });
    await makeDb(path.join(dir, 'a.db'));
    await makeDb(path.join(dir, 'b.db'));
    const a = await service('a').createBackup();
    const b = await service('b').createBackup();
    assert.equal(path.basename(a.backupPath!), path.basename(b.backupPath!), 'the same local name');
    assert.deepEqual([a.targets![0]!.name, b.targets![0]!.name], ['backup_20260601_100000.db', 'backup_20260601_100000-1.db']);
    assert.ok(fs.readFileSync(path.join(dir, 'offsite', 'backup_20260601_100000.db')).equals(fs.readFileSync(a.backupPath!)));
    assert.deepEqual((await service('a').targets.list(shared.id)).map((x) => x.filename), ['backup_20260601_100000.db']);
    assert.deepEqual((await service('b').targets.list(shared.id)).map((x) => x.filename), ['backup_20260601_100000-1.db']);
  });

  it('a password change whose new backup fails: every backup goes from every target reached; one not reached is told', async (t) => {
    if (process.getuid?.() !== 0 && !process.env.CI) return t.skip('needs root to mount a tmpfs');
    let now = new Date('2026-07-01T10:00:00Z');
    const dir = tempDir('tgt-rekey-fail');
    const db = path.join(dir, 'app.db');
    await makeDb(db, 'old-pw');
    const offsite = new FileTarget(new NodeFileStore(), path.join(dir, 'offsite'), { create: true });
    const dead = new S3Target({ bucket: 'b', endpoint: `http://127.0.0.1:${await closedPort()}`, credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, retry: { attempts: 1 } });
    const targets = [{ target: offsite, maxBackups: 5 }, { target: dead }];
    const service = (backupDir: string, password: string) => new BackupService({ databasePath: db, password, backupDir, keyProfile: FAST, clock: () => now, targets });
    for (let day = 0; day < 2; day++) {
      now = new Date(Date.UTC(2026, 6, 1 + day, 10));
      assert.equal((await service(path.join(dir, 'backups'), 'old-pw').createBackup()).targets![0]!.action, 'uploaded');
    }
    // A backup directory on a real 4 KiB filesystem: the new backup cannot be written.
    const small = path.join(dir, 'small');
    fs.mkdirSync(small, { mode: 0o700 });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4k,mode=0700', 'tmpfs', small]);
    try {
      const r = await service(small, 'old-pw').changePassword({ password: 'new-pw' });
      assert.equal(r.success, false);
      assert.equal(r.errorCode, 'STORAGE_FULL', r.error);
      assert.deepEqual(r.targets!.map((x) => [x.action, x.deleted, x.errorCode ?? 'ok']), [['purged', 2, 'ok'], ['failed', 0, 'TARGET_UNREACHABLE']]);
      assert.match(r.targets![1]!.error!, /backups under the old password may remain there/);
      assert.deepEqual(await names(offsite), [], 'no old-password backup left on the target');
      assert.equal(await rowCount(db, 'new-pw'), 5000, 'the password did change');
    } finally {
      execFileSync('umount', [small]);
    }
  });

  it('purgeAndRefresh leaves one backup on every target', { timeout: 60_000 }, async () => {
    let now = new Date('2026-04-01T10:00:00Z');
    const { db, specs, service } = setup('tgt-purge', (dir) => [{ target: new FileTarget(new NodeFileStore(), path.join(dir, 'offsite'), { create: true }), maxBackups: 5 }], { clock: () => now });
    await makeDb(db);
    for (let day = 0; day < 3; day++) {
      now = new Date(Date.UTC(2026, 3, 1 + day, 10));
      await service().createBackup();
    }
    assert.equal((await names(specs[0]!.target)).length, 3);
    const r = await service().purgeAndRefresh();
    assert.equal(r.success, true, r.error);
    assert.deepEqual(r.targets!.map((t) => [t.action, t.deleted]), [['uploaded', 3]]);
    assert.deepEqual(await names(specs[0]!.target), [path.basename(r.backupPath!)]);
  });
});

describe('targets with a key profile that has sidecar files', () => {
  it('the reference app: the .salt goes beside the backup on the target and comes back on restore, on a device that lost both', { timeout: 120_000 }, async () => {
    const dir = tempDir('tgt-refapp');
    const db = path.join(dir, 'ldr_user.db');
    const salt = crypto.getRandomValues(new Uint8Array(32));
    fs.writeFileSync(`${db}.salt`, salt);
    const pragmas = [`key = "x'${pbkdf2Sync('user password', salt, 256_000, 64, 'sha512').toString('hex')}'"`, 'cipher_page_size = 16384'];
    withNative(db, pragmas, (n) => {
      n.pragma('journal_mode = WAL');
      n.exec("CREATE TABLE research (id INTEGER PRIMARY KEY, q TEXT); INSERT INTO research (q) VALUES ('why'), ('how')");
    });
    const offsite = new FileTarget(new NodeFileStore(), path.join(dir, 'offsite'), { create: true });
    const service = () => new BackupService({ databasePath: db, password: 'user password', backupDir: path.join(dir, 'backups'), keyProfile: referenceApp, prefix: 'ldr_backup', targets: [{ target: offsite }] });
    const r = await service().createBackup();
    assert.equal(r.targets![0]!.action, 'uploaded', r.targets![0]!.error);
    const name = r.targets![0]!.name!;
    assert.deepEqual((await offsite.list('')).map((o) => o.name), [name, `${name}.salt`]);
    assert.deepEqual(await service().targets.list(offsite.id).then((l) => l.map((b) => b.filename)), [name]);
    fs.rmSync(db);
    fs.rmSync(`${db}.salt`);
    fs.rmSync(path.join(dir, 'backups'), { recursive: true });
    assert.equal((await service().targets.verify(offsite.id, name)).ok, true);
    const restored = await service().targets.restore(offsite.id, name);
    assert.equal(restored.success, true, restored.error);
    assert.deepEqual(fs.readFileSync(`${db}.salt`), Buffer.from(salt));
    assert.deepEqual(nativeQuery(db, pragmas, 'SELECT q FROM research ORDER BY id'), [{ q: 'why' }, { q: 'how' }]);
  });
});

/** Flips one byte of each object once it is in place: damage the store does after accepting the bytes. */
function damaging(inner: FileTarget, dir: string): BackupTarget {
  return {
    id: inner.id,
    list: (p) => inner.list(p), stat: (n) => inner.stat(n), read: (n, o, l) => inner.read(n, o, l), remove: (n) => inner.remove(n),
    async put(name: string, size: number, source: (o: number, l: number) => Promise<Uint8Array>, onProgress?: (d: number) => void) {
      await inner.put(name, size, source, onProgress);
      const file = path.join(dir, name);
      const bytes = fs.readFileSync(file);
      bytes[size - 100] = bytes[size - 100]! ^ 0x01;
      fs.writeFileSync(file, bytes);
    },
  };
}

describe('the backup service with S3 on Swift', { skip: skipS3 }, () => {
  it('a password change replaces every backup on S3; a target down at the time is told, and swept the next time it answers', { timeout: 120_000 }, async () => {
    const proxy = await startFaultProxy(store.env!.endpoint);
    after(() => proxy.close());
    let now = new Date('2026-05-01T10:00:00Z');
    const direct = s3();
    const flaky = s3({ endpoint: proxy.url });
    const flakySeen = s3({ prefix: flaky.prefix }); // the same objects, not through the proxy
    const { db, service } = setup('tgt-rekey', () => [{ target: direct, maxBackups: 5 }, { target: flaky, maxBackups: 5 }], { clock: () => now });
    await makeDb(db, 'old-pw');
    for (let day = 0; day < 2; day++) {
      now = new Date(Date.UTC(2026, 4, 1 + day, 10));
      const r = await service('old-pw').createBackup();
      assert.deepEqual(r.targets!.map((t) => t.action), ['uploaded', 'uploaded'], JSON.stringify(r.targets));
    }
    proxy.failNext(100_000, 503);
    const changed = await service('old-pw').changePassword({ password: 'new-pw' });
    assert.equal(changed.success, true, changed.error);
    const [ok, down] = changed.targets!;
    assert.deepEqual([ok!.action, ok!.deleted], ['uploaded', 2]);
    assert.equal(down!.errorCode, 'TARGET_UNREACHABLE');
    assert.match(down!.error!, /backups under the old password may remain there/);
    assert.deepEqual(await names(direct), [ok!.name]);
    assert.ok(await readableWith(direct, ok!.name!, await rawKey('new-pw', direct, ok!.name!), FAST));
    assert.equal((await names(flakySeen)).length, 2, 'still the two old ones: it could not be reached');

    proxy.failNext(0);
    now = new Date(Date.UTC(2026, 4, 3, 10));
    const next = await service('new-pw').createBackup();
    assert.equal(next.targets![1]!.success, true, next.targets![1]!.error);
    assert.equal(next.targets![1]!.deleted, 2, 'both old-password backups swept');
    for (const n of await names(flaky)) assert.ok(await readableWith(flaky, n, await rawKey('new-pw', flaky, n), FAST), n);
    const restored = await service('new-pw').targets.restore(flaky.id, next.targets![1]!.name!);
    assert.equal(restored.success, true, restored.error);
    assert.equal(await rowCount(db, 'new-pw'), 5000);
  });

  it('wrong credentials and a missing bucket fail their target only, typed; the others and the local backup go on', { timeout: 60_000 }, async () => {
    const good = s3();
    const { db, service } = setup('tgt-deny', () => [
      { target: s3({ credentials: { accessKeyId: store.env!.accessKeyId, secretAccessKey: 'wrong-secret-123' } }) },
      { target: s3({ bucket: 'no-such-bucket-here' }) },
      { target: good },
    ]);
    await makeDb(db);
    const r = await service().createBackup();
    assert.equal(r.success, true, r.error);
    assert.deepEqual(r.targets!.map((t) => t.errorCode ?? t.action), ['TARGET_DENIED', 'TARGET_NOT_FOUND', 'uploaded']);
    assert.ok(!r.targets![0]!.error!.includes('wrong-secret-123'));
    assert.deepEqual(await names(good), [r.targets![2]!.name]);
  });

  it('a large backup goes up in parts and is checked on the store with ranged reads', { timeout: 120_000 }, async () => {
    const t = s3({ upload: { multipartThreshold: 5 << 20, partSize: 5 << 20 } });
    const { db, service } = setup('tgt-large', () => [{ target: t }]);
    await makeDb(db, 'pw', 400_000);
    const phases: string[] = [];
    const r = await service().createBackup({ onProgress: (p) => void (phases.at(-1) !== p.phase && phases.push(p.phase)) });
    assert.ok(r.sizeBytes > 5 << 20, `${r.sizeBytes} bytes: more than one part`);
    assert.equal(r.targets![0]!.action, 'uploaded', r.targets![0]!.error);
    assert.deepEqual(phases.slice(-2), ['upload', 'verify']);
    assert.equal((await t.stat(r.targets![0]!.name!))?.size, r.sizeBytes);
  });
});

async function rawKey(password: string, t: BackupTarget, name: string): Promise<Uint8Array> {
  return deriveKey({ password }, await t.read(name, 0, 16), resolveSettings(FAST.cipher));
}
