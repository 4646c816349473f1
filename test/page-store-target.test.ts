/**
 * The page store on backup targets (src/backup/page-store/target-store.ts):
 * the contract, tamper and crash suites with the store's directory as objects
 * on a FileTarget over the memory store, and on S3 on the real Swift. The
 * database, its snapshots and restored copies stay on the local (memory) store.
 */
import * as timed from './timeouts.ts';
import { describe, it } from './timeouts.ts';
import { after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MemoryFileStore, MemoryVFS, openDatabaseWith, type FileStore } from '../src/index.ts';
import { nodeEngine, NodeFileStore } from '../src/node.ts';
import { TargetStore } from '../src/backup/page-store/target-store.ts';
import { FileTarget } from '../src/targets/file-target.ts';
import { S3Target } from '../src/targets/s3/index.ts';
import type { BackupTarget } from '../src/targets/target.ts';
import { Fixture, pageStoreContract, type PageStoreTestHost, type Runner } from './contract/page-store.contract.ts';
import { pageStoreTamperContract } from './contract/page-store-tamper.contract.ts';
import { crashingStore, crashingTarget, pageStoreCrashContract, type CrashTestHost } from './contract/page-store-crash.contract.ts';
import { useSwift } from './swift.ts';

const { engine } = await nodeEngine();
const memory = new MemoryVFS('cipherkeep-page-store-target', engine.module);
const memoryName = engine.registerVFS(memory);
const local = new MemoryFileStore(memory);
let dirs = 0;

/** Every fixture's `<dir>/store` is the objects `<dir name>.<file>` on `target`; the rest is local. */
function hostOn(label: string, target: BackupTarget): PageStoreTestHost & { files: TargetStore } {
  const files = new TargetStore(local, target, (d) => {
    const m = new RegExp(`^/${label}(\\d+)/store$`).exec(d);
    return m ? `${label}${m[1]}.` : null;
  });
  return {
    files,
    open: (p, o) => openDatabaseWith(engine, memoryName, p, o),
    async freshDir() {
      const dir = `/${label}${++dirs}`;
      await local.ensureDir(dir);
      return dir;
    },
  };
}

/**
 * For the crash suite: every run is a new process, so each use of `files`
 * is a new TargetStore (one remembers what it put and removed); the dying
 * run's store is `dying(n)`'s target under a TargetStore of its own.
 */
function crashHostOn(label: string, target: BackupTarget, dying: (n: number) => { target: BackupTarget; crashed: () => boolean }): CrashTestHost {
  const base = hostOn(label, target);
  return {
    get files() {
      return new TargetStore(local, target, base.files.mount);
    },
    open: base.open,
    freshDir: base.freshDir,
    crashing(n) {
      const d = dying(n);
      return { store: new TargetStore(local, d.target, base.files.mount), crashed: d.crashed };
    },
  };
}

const onMemory = hostOn('pst', new FileTarget(local, '/objects', { create: true }));
const onDisk = (files: FileStore) => new FileTarget(files, objectsDir, { create: true });
pageStoreContract('FileTarget (memory)', onMemory);
pageStoreTamperContract('FileTarget (memory)', onMemory);
// The FileTarget's own writes die: a torn staging file, a rename not done.
pageStoreCrashContract('FileTarget (memory)', crashHostOn('psc', new FileTarget(local, '/crash-objects', { create: true }), (n) => {
  const d = crashingStore(local, n);
  return { target: new FileTarget(d.store, '/crash-objects', { create: true }), crashed: d.crashed };
}));
// The same on the filesystem: the FileTarget's directory a real one, its writes dying there.
const disk = new NodeFileStore();
const objectsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cipherkeep-pst-crash-'));
after(() => fs.rmSync(objectsDir, { recursive: true, force: true }));
pageStoreCrashContract('FileTarget (filesystem)', crashHostOn('psd', onDisk(disk), (n) => {
  const d = crashingStore(disk, n);
  return { target: onDisk(d.store), crashed: d.crashed };
}));

describe('page store on a target: what lands on the target', { timeout: 120_000 }, () => {
  it('packs and manifests are objects under the name prefix; nothing of the store is written locally', async () => {
    const f = await new Fixture(onMemory).setup(2000);
    const g = await f.backup();
    const objects = await onMemory.files.target.list(`pst${f.dir.slice(4)}.`);
    assert.ok(objects.some((o) => /\.gen-0000000001\.manifest$/.test(o.name)), 'the manifest is an object');
    assert.ok(objects.filter((o) => /\.pack-[0-9a-f]{32}-.+\.pack$/.test(o.name)).length >= 1, 'packs are objects');
    assert.ok(!objects.some((o) => o.name.endsWith('.tmp')), 'no temporary manifest reaches the target');
    assert.deepEqual(await local.list(f.store, ''), [], 'nothing in a local directory of that name');
    assert.equal(g.generation, '1');
  });

  it('a listing that lags the writes (as Swift\'s may) never lets collection take a new generation\'s packs', async () => {
    const f = await new Fixture(onMemory).setup(2000);
    await f.backup();
    // A target whose listing shows nothing new: what this store put, it still lists.
    const inner = new FileTarget(local, '/objects', { create: true });
    const frozen = new Set((await inner.list('')).map((o) => o.name));
    const lagging: BackupTarget = {
      id: inner.id, stat: (n) => inner.stat(n), read: (n, o, l) => inner.read(n, o, l), put: (...a) => inner.put(...a), remove: (n) => inner.remove(n),
      list: async (p) => (await inner.list(p)).filter((o) => frozen.has(o.name)),
    };
    await f.change(50);
    const g = await f.backup({ retention: { keepLast: 1 }, repackBelow: 0 }, f.key, new TargetStore(local, lagging, onMemory.files.mount));
    assert.equal(g.generation, '2');
    assert.deepEqual(g.cleanup.deleted, ['1']);
    await f.restoresExactly('2');
  });
});

const swift = await useSwift();
const run = `ps-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
if (swift.skip) {
  describe('page store on S3 (Swift)', { skip: swift.skip }, () => {});
} else {
  const env = swift.env!;
  const s3 = new S3Target({
    bucket: env.bucket, endpoint: env.endpoint, region: env.region,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    prefix: run, retry: { attempts: 3, baseDelayMs: 50 },
  });
  after(async () => {
    for (const o of await s3.client.listObjects(`${run}/`)) await s3.client.deleteObject(o.key);
  });
  const onS3 = hostOn('pss', s3);
  // Every file is a request to a real object store: more time than on memory.
  const slower = { describe: (n: string, _o: { timeout: number }, fn: () => void) => timed.describe(n, { timeout: 420_000 }, fn), it: timed.it } as unknown as Runner;
  pageStoreContract('S3 (Swift)', onS3, slower);
  pageStoreTamperContract('S3 (Swift)', onS3, slower);
  pageStoreCrashContract('S3 (Swift)', crashHostOn('psx', s3, (n) => crashingTarget(s3, n)), slower);
}
