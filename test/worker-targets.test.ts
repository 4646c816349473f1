/**
 * Off-site targets through the worker API (the same Comlink client pages
 * use), in a Node/Deno worker thread against the real Swift: the caller's
 * presign callback stays on this thread and the worker calls it per request;
 * per-target results, listing, verify, restore and import from a target,
 * a new device restoring into a missing database, and typed errors (with
 * TargetUnreachableError's status) crossing back. The browser side is
 * test/browser/worker-targets.spec.ts.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, it } from './timeouts.ts';
import {
  ClosedError, InvalidArgumentError, TargetDeniedError, TargetUnreachableError, openKeepWorker, type KeepClient, type KeepOptions,
} from '../src/node.ts';
import { S3Target, createPresigner, type Presign } from '../src/targets/s3/index.ts';
import { tempDir } from './helpers.ts';
import { swift, useSwift } from './swift.ts';

const store = await useSwift();
const run = `worker-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
const FAST = { kdfIterations: 1000 };

const presigner = (secretAccessKey?: string): Presign => {
  const env = store.env!;
  return createPresigner({
    bucket: env.bucket, endpoint: env.endpoint, region: env.region, prefix: `${run}/`,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: secretAccessKey ?? env.secretAccessKey },
  });
};

if (!store.skip) {
  after(async () => {
    const env = store.env!;
    const all = new S3Target({ bucket: env.bucket, endpoint: env.endpoint, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey } });
    for (const o of await all.client.listObjects(`${run}/`)) await all.client.deleteObject(o.key);
  });
}
if (store.started) after(() => swift('stop'));

async function withKeep<T>(options: KeepOptions, fn: (keep: KeepClient) => Promise<T>): Promise<T> {
  const keep = await openKeepWorker(options);
  try {
    return await fn(keep);
  } finally {
    await keep.close().catch(() => {});
    await keep.terminate();
  }
}

describe('the worker API with off-site targets', { skip: store.skip }, () => {
  it('backs up to S3 through a presign callback that stays on the calling thread; lists, verifies, restores and imports from it; a new device restores into a missing database', { timeout: 180_000 }, async () => {
    const dir = tempDir('worker-targets');
    const signed: string[] = [];
    const sign = presigner();
    const presign: Presign = async (method, key, request) => {
      signed.push(`${method} ${key}`);
      return sign(method, key, request);
    };
    const prefix = `${run}/a/`;
    const options: KeepOptions = {
      databasePath: path.join(dir, 'app.db'), backupDir: path.join(dir, 'backups'), password: 'pw', create: true, cipher: FAST,
      targets: [{ s3: { presign, prefix, retry: { attempts: 2, baseDelayMs: 10 } }, maxBackups: 3 }],
    };
    const name = await withKeep(options, async (keep) => {
      await keep.exec("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('off-site')");
      const r = await keep.createBackup();
      assert.equal(r.success, true, r.error);
      const [id] = await keep.targetIds();
      assert.equal(id, `s3 (presigned) ${prefix}`);
      assert.equal(r.targets?.length, 1);
      assert.deepEqual({ ...r.targets![0], sizeBytes: undefined }, { target: id, success: true, action: 'uploaded', name: r.backupPath!.split('/').at(-1), deleted: 0, sizeBytes: undefined });
      assert.ok(signed.some((s) => s.startsWith('PUT ')), `every request was signed here: ${signed.join(', ')}`);
      const listed = await keep.listTargetBackups(id!);
      assert.deepEqual(listed.map((b) => b.filename), [r.targets![0]!.name]);
      assert.deepEqual(await keep.getLatestTargetBackup(id!), listed[0]);
      assert.deepEqual(await keep.verifyTargetBackup(id!, listed[0]!.filename), { ok: true, pages: 2, tables: 1 });

      await keep.exec("UPDATE notes SET body = 'changed'");
      const restored = await keep.restoreTargetBackup(id!, listed[0]!.filename);
      assert.equal(restored.success, true, restored.error);
      assert.deepEqual(await keep.query('SELECT body FROM notes'), [{ body: 'off-site' }], 'the connection reopened on the restored database');
      const imported = await keep.importTargetBackup(id!, listed[0]!.filename);
      assert.equal(imported.success, true, imported.error);
      assert.equal((await keep.listBackups()).length, 2);
      assert.deepEqual((await keep.pruneTargets()).map((t) => [t.action, t.deleted]), [['purged', 0]]);
      return listed[0]!.filename;
    });

    // A new device: no database, no local backups; only the target.
    const other = tempDir('worker-targets-new');
    await withKeep({ ...options, databasePath: path.join(other, 'app.db'), backupDir: path.join(other, 'backups'), create: false, whenMissing: 'backups-only' }, async (keep) => {
      assert.equal(await keep.databaseState(), 'missing');
      await assert.rejects(keep.query('SELECT 1'), (e) => e instanceof ClosedError && /restore a backup/.test(e.message));
      const [id] = await keep.targetIds();
      assert.deepEqual((await keep.listTargetBackups(id!)).map((b) => b.filename), [name]);
      const restored = await keep.restoreTargetBackup(id!, name);
      assert.equal(restored.success, true, restored.error);
      assert.equal(await keep.databaseState(), 'open');
      assert.deepEqual(await keep.query('SELECT body FROM notes'), [{ body: 'off-site' }]);
    });
    // Without whenMissing, a missing database is still NOT_FOUND.
    await assert.rejects(openKeepWorker({ ...options, databasePath: path.join(other, 'none.db'), create: false }), { code: 'NOT_FOUND' });
  });

  it('target failures cross as typed errors: a wrong signature is TARGET_DENIED, a presigner that refuses keeps its code, a store answering 503 is TARGET_UNREACHABLE with its status', { timeout: 120_000 }, async () => {
    const failing = http.createServer((_req, res) => void res.writeHead(503, { 'content-type': 'application/xml' }).end('<Error><Code>ServiceUnavailable</Code></Error>'));
    await new Promise<void>((r) => failing.listen(0, '127.0.0.1', r));
    after(() => new Promise((r) => failing.close(r)));
    const down = `http://127.0.0.1:${(failing.address() as AddressInfo).port}`;
    const dir = tempDir('worker-targets-err');
    const retry = { attempts: 2, baseDelayMs: 10 };
    await withKeep({
      databasePath: path.join(dir, 'app.db'), backupDir: path.join(dir, 'backups'), password: 'pw', create: true, cipher: FAST,
      targets: [
        { s3: { presign: presigner('wrong'), prefix: `${run}/wrong/`, retry } },
        { s3: { presign: async () => { throw new TargetDeniedError('the app server says: signed out'); }, prefix: `${run}/refused/`, retry } },
        { s3: { presign: async (_m, key) => ({ url: `${down}/${key}`, headers: {} }), prefix: `${run}/down/`, retry } },
        { s3: { presign: presigner(), prefix: `${run}/fine/`, retry } },
      ],
    }, async (keep) => {
      await keep.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)');
      const r = await keep.createBackup();
      assert.equal(r.success, true, r.error);
      assert.deepEqual(r.targets!.map((t) => [t.action, t.errorCode]), [
        ['failed', 'TARGET_DENIED'], ['failed', 'TARGET_DENIED'], ['failed', 'TARGET_UNREACHABLE'], ['uploaded', undefined],
      ], 'one target failing never stops the others');
      assert.match(r.targets![1]!.error!, /signed out/);
      const [wrong, refused, unreachable] = await keep.targetIds();
      await assert.rejects(keep.listTargetBackups(wrong!), (e) => e instanceof TargetDeniedError && /403 SignatureDoesNotMatch/.test(e.message));
      await assert.rejects(keep.listTargetBackups(refused!), (e) => e instanceof TargetDeniedError && /signed out/.test(e.message));
      await assert.rejects(keep.listTargetBackups(unreachable!), (e) => e instanceof TargetUnreachableError && e.status === 503);
      const restore = await keep.restoreTargetBackup(unreachable!, 'backup_20260101_000000.db');
      assert.deepEqual([restore.success, restore.errorCode], [false, 'TARGET_UNREACHABLE']);
      assert.deepEqual(await keep.query('SELECT v FROM t'), [{ v: 1 }], 'a failed restore leaves the database open and as it was');
      await assert.rejects(keep.listTargetBackups('s3://nope/'), InvalidArgumentError);
    });
    await assert.rejects(
      openKeepWorker({ databasePath: path.join(dir, 'b.db'), backupDir: dir, password: 'pw', create: true, cipher: FAST, targets: [{ folder: {} as FileSystemDirectoryHandle }] }),
      (e) => e instanceof InvalidArgumentError && /targets\[0\]\.folder must be a FileSystemDirectoryHandle/.test(e.message),
    );
  });
});
