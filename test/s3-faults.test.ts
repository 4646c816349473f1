/**
 * The backup service's S3 target against faults of the real Swift
 * (scripts/swift/swift.sh): the server stopped mid-upload, a 5xx burst, a
 * clock too far off, an object damaged on the store's disk between the
 * upload and the read-back. (The S3 layer's own fault tests are in
 * s3.test.ts; these check what the service makes of them.)
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from './timeouts.ts';
import { BackupService, openDatabase, sqlcipher4 } from '../src/node.ts';
import { S3Target, type S3TargetOptions } from '../src/targets/s3/index.ts';
import type { BackupTarget } from '../src/targets/target.ts';
import type { TargetSpec } from '../src/backup/targets.ts';
import { startFaultProxy } from './fixtures/fault-proxy.ts';
import { tempDir } from './helpers.ts';
import { swift, useSwift } from './swift.ts';

const FAST = { ...sqlcipher4, cipher: { kdfIterations: 1000 } };
const MIB = 1 << 20;
const store = await useSwift();
const skip = store.skip;
const env = store.env!;
const run = `faults-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
let serial = 0;

function s3(extra: Partial<S3TargetOptions> = {}): S3Target {
  return new S3Target({
    bucket: env.bucket, endpoint: env.endpoint, region: env.region,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    prefix: `${run}/${serial++}`, retry: { attempts: 2, baseDelayMs: 50 },
    upload: { multipartThreshold: 5 * MIB, partSize: 5 * MIB, concurrency: 1 }, ...extra,
  });
}

if (!skip) {
  after(async () => {
    const all = s3({ prefix: '' });
    for (const o of await all.client.listObjects(`${run}/`)) await all.client.deleteObject(o.key);
    for (const u of await all.client.listMultipartUploads(`${run}/`)) await all.client.abortMultipartUpload(u.key, u.uploadId);
  });
}
if (store.started) after(() => swift('stop'));

async function setup(label: string, specs: TargetSpec[], rows = 5000, clock?: () => Date) {
  const dir = tempDir(label);
  const db = path.join(dir, 'app.db');
  const database = await openDatabase(db, { password: 'pw', create: true, cipher: FAST.cipher });
  await database.exec(`CREATE TABLE t (v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < ${rows}) INSERT INTO t SELECT 'row ' || i FROM c`);
  await database.close();
  return { dir, service: () => new BackupService({ databasePath: db, password: 'pw', backupDir: path.join(dir, 'backups'), keyProfile: FAST, targets: specs, ...(clock ? { clock } : {}) }) };
}

const names = async (t: BackupTarget) => (await t.list('backup_')).map((o) => o.name);

describe('the backup service on S3 (Swift): faults', { skip }, () => {
  it('the server stopped mid-upload: the local backup stands, no partial backup shows on S3, the next run completes', { timeout: 180_000 }, async () => {
    // Through a loopback proxy that drops every connection from the moment the
    // first part is in (the stop of the real server takes a second), then the real server stops.
    const proxy = await startFaultProxy(env.endpoint);
    after(() => proxy.close());
    const t = s3({ endpoint: proxy.url });
    const direct = s3({ prefix: t.prefix });
    let now = new Date();
    const { service } = await setup('fault-stop', [{ target: t }], 800_000, () => now);
    let stopping: Promise<string> | null = null;
    const r = await service().createBackup({
      onProgress: (p) => {
        if (p.phase === 'upload' && p.bytesDone >= 5 * MIB && !stopping) {
          proxy.dropNext(1_000_000);
          stopping = swift('stop', 'proxy');
        }
      },
    });
    assert.ok(stopping, 'the server was stopped during the upload');
    await stopping;
    assert.equal(r.success, true, r.error);
    assert.ok(r.sizeBytes > 10 * MIB, `${r.sizeBytes} bytes: a multipart upload of three parts or more`);
    assert.equal(r.targets![0]!.success, false);
    assert.equal(r.targets![0]!.errorCode, 'TARGET_UNREACHABLE', r.targets![0]!.error);
    proxy.dropNext(0);
    await swift('start');
    assert.deepEqual(await names(direct), [], 'no partial backup under a backup name');
    assert.equal((await direct.client.listMultipartUploads(direct.prefix)).length, 1, 'the abort could not reach the stopped server');
    const next = await service().createBackup();
    assert.equal(next.existing, true, 'the local backup of today is reused');
    assert.equal(next.targets![0]!.action, 'uploaded', next.targets![0]!.error);
    assert.deepEqual(await names(direct), [next.targets![0]!.name]);
    assert.equal((await direct.stat(next.targets![0]!.name!))?.size, r.sizeBytes);
    assert.deepEqual(await direct.client.listMultipartUploads(direct.prefix), [], 'the cut upload was taken up (resumed) and completed');
    // An upload no run takes up (another name) stays while it may be at work, and goes once a day old.
    await direct.client.createMultipartUpload(`${direct.prefix}backup_left.db`);
    await service().createBackup({ force: true });
    assert.equal((await direct.client.listMultipartUploads(direct.prefix)).length, 1, 'an open upload younger than a day may be at work');
    now = new Date(Date.now() + 25 * 3600_000);
    const dayAfter = await service().createBackup();
    assert.equal(dayAfter.targets![0]!.action, 'uploaded', dayAfter.targets![0]!.error);
    assert.deepEqual(await direct.client.listMultipartUploads(direct.prefix), [], 'the day-old upload is aborted by a later run');
  });

  it('a 5xx burst is retried and the backup arrives; a clock 20 minutes off is TARGET_DENIED and says so', { timeout: 60_000 }, async () => {
    const proxy = await startFaultProxy(env.endpoint);
    after(() => proxy.close());
    const bursty = s3({ endpoint: proxy.url, retry: { attempts: 4, baseDelayMs: 20 } });
    const skewed = s3({ clock: () => new Date(Date.now() + 20 * 60_000) });
    const { service } = await setup('fault-5xx', [{ target: bursty }, { target: skewed }]);
    proxy.failNext(3, 503);
    const r = await service().createBackup();
    assert.equal(r.success, true, r.error);
    assert.equal(proxy.counts().faulted, 3);
    assert.equal(r.targets![0]!.action, 'uploaded', r.targets![0]!.error);
    assert.equal(r.targets![1]!.errorCode, 'TARGET_DENIED');
    assert.match(r.targets![1]!.error!, /clock is 1[12]\d\d s ahead/);
  });

  it('an object damaged on the store between upload and read-back is caught, reported and deleted', { timeout: 60_000 }, async () => {
    const inner = s3();
    const damaging: BackupTarget = {
      id: inner.id,
      list: (p) => inner.list(p), stat: (n) => inner.stat(n), read: (n, o, l) => inner.read(n, o, l), remove: (n) => inner.remove(n),
      async put(name, size, source, onProgress) {
        let first: Uint8Array | null = null;
        await inner.put(name, size, async (o, l) => {
          const bytes = await source(o, l);
          if (o === 0) first = bytes.slice(0, 8192);
          return bytes;
        }, onProgress);
        flipOnDisk(size, first!);
      },
    };
    const { service } = await setup('fault-damage', [{ target: damaging }]);
    const r = await service().createBackup();
    assert.equal(r.success, true, r.error);
    assert.equal(r.targets![0]!.errorCode, 'VERIFY_FAILED');
    assert.match(r.targets![0]!.error!, /page 2 of backup_\S+ on s3:\S+ failed its HMAC check/);
    assert.deepEqual(await names(inner), []);
  });
});

/** Flips a byte of page 2 in Swift's stored file of the object that is `size` bytes long and starts with `head`. */
function flipOnDisk(size: number, head: Uint8Array): void {
  const objects = path.join(env.stateDir, 'srv/d1/objects');
  const file = fs.readdirSync(objects, { recursive: true }).map((f) => path.join(objects, String(f)))
    .filter((f) => f.endsWith('.data') && fs.statSync(f).size === size)
    .find((f) => {
      const fd = fs.openSync(f, 'r');
      const b = Buffer.alloc(head.length);
      fs.readSync(fd, b, 0, head.length, 0);
      fs.closeSync(fd);
      return b.equals(Buffer.from(head));
    });
  assert.ok(file, 'the object file on the store');
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, 5000);
  fs.writeSync(fd, new Uint8Array([b[0]! ^ 0x01]), 0, 1, 5000);
  fs.closeSync(fd);
}
