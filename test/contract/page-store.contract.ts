/**
 * The page store's behaviour on every store: memory and the Node/Deno
 * filesystem here (test/page-store.test.ts), OPFS in the browser suite.
 * Databases and snapshots are made the way the backup service makes them
 * (copySnapshot + materialize through the host's engine); every restored
 * generation is compared byte for byte with the snapshot it was made from
 * and opened again.
 */
import * as nodeTest from '../timeouts.ts';
import assert from 'node:assert/strict';
import { CorruptDatabaseError, type CipherSettings, type Database, type FileStore, type OpenOptions } from '../../src/index.ts';
import { copySnapshot, discard, materialize } from '../../src/backup/snapshot.ts';
import {
  applyRetention, backupGeneration, exportGeneration, listGenerations, restoreGeneration, verifyGeneration,
  type BackupGenerationOptions, type GenerationResult,
} from '../../src/backup/page-store/index.ts';

export interface PageStoreTestHost {
  files: FileStore;
  open(path: string, options: OpenOptions): Promise<Database>;
  /** A new, empty directory. */
  freshDir(): Promise<string>;
  /** Rows of `sql` with `bytes` opened in native SQLCipher under the raw key `keyHex`; absent where there is no native SQLCipher. */
  nativeRows?(bytes: Uint8Array, keyHex: string, sql: string, cipher?: CipherSettings): unknown[];
}

export interface Runner {
  describe(name: string, options: { timeout: number }, fn: () => void): void;
  it(name: string, fn: () => Promise<void>): void;
}

export const PACK = 64 << 10; // small packs, so small databases span many
export const DAY = 86_400_000;
export const T0 = Date.UTC(2026, 2, 1, 10);
const hexOf = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

/** A database and the store that backs it up, with helpers the tests share. */
export class Fixture {
  readonly key = crypto.getRandomValues(new Uint8Array(32));
  db!: Database;
  dbPath!: string;
  store!: string;
  dir!: string;
  /** Snapshot bytes of every generation made (by generation id). */
  readonly snapshots = new Map<string, Uint8Array>();
  day = 0;
  #snaps = 0;

  constructor(readonly host: PageStoreTestHost, public cipher: CipherSettings = {}) {}

  get files(): FileStore {
    return this.host.files;
  }

  async setup(rows = 3000): Promise<this> {
    this.dir = await this.host.freshDir();
    this.dbPath = this.files.join(this.dir, 'app.db');
    this.store = this.files.join(this.dir, 'store');
    this.db = await this.host.open(this.dbPath, { key: this.key, create: true, cipher: this.cipher });
    await this.db.exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB); CREATE INDEX tv ON t(v);
      WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < ${rows}) INSERT INTO t SELECT i, randomblob(120) FROM c`);
    return this;
  }

  /** Changes about `n` rows in place (a few pages). */
  async change(n = 5): Promise<void> {
    await this.db.exec(`UPDATE t SET v = randomblob(120) WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT ${n})`);
  }

  /** A consistent, materialized snapshot copy of the database, as the backup service makes it. */
  async snapshot(): Promise<string> {
    const path = this.files.join(this.dir, `snap-${++this.#snaps}.db`);
    const snap = await copySnapshot(this.files, this.dbPath, path);
    const copy = await this.host.open(path, { key: this.key, cipher: this.cipher });
    try {
      await materialize(copy, snap.pending);
    } finally {
      await copy.close();
    }
    for (const s of ['-wal', '-journal', '-shm']) await this.files.remove(`${path}${s}`);
    return path;
  }

  async backup(options: Partial<BackupGenerationOptions> = {}, key = this.key, files = this.files): Promise<GenerationResult> {
    const snap = await this.snapshot();
    // Every other day the snapshot is read through its open connection (SnapshotSource), as a host may do.
    const open = this.day % 2 ? await this.host.open(snap, { key, cipher: this.cipher, readonly: true }) : null;
    try {
      const size = (await this.files.stat(snap))!.size;
      const source = open ? { size, read: (offset: number, into: Uint8Array) => open.readRaw(offset, into) } : snap;
      const r = await backupGeneration(files, this.store, source, key, this.cipher, { now: new Date(T0 + this.day++ * DAY), packBytes: PACK, ...options });
      this.snapshots.set(r.generation, await readAll(this.files, snap));
      return r;
    } finally {
      await open?.close();
      await discard(this.files, snap);
    }
  }

  /** Restores `generation` and requires the bytes of its snapshot; returns the restored path. */
  async restoresExactly(generation: string, key = this.key): Promise<string> {
    const target = this.files.join(this.dir, `restored-${generation}-${++this.#snaps}.db`);
    const r = await restoreGeneration(this.files, this.store, generation, key, target);
    const bytes = await readAll(this.files, target);
    assert.ok(equalBytes(bytes, this.snapshots.get(generation)!), `generation ${generation} restores byte for byte to its snapshot`);
    assert.equal(r.bytes, bytes.length);
    return target;
  }

  /** Every generation the store retains restores exactly, and the store reports no problem. */
  async everyRetainedRestores(): Promise<string[]> {
    const list = await listGenerations(this.files, this.store, this.key);
    assert.deepEqual(list.problems, []);
    const kept = list.generations.filter((g) => g.state === 'ok').map((g) => g.generation);
    for (const g of kept) {
      const path = await this.restoresExactly(g);
      await this.files.remove(path);
    }
    return kept;
  }

  async packs(): Promise<string[]> {
    return (await this.files.list(this.store, 'pack-')).map((f) => f.name).sort();
  }

  async manifests(): Promise<string[]> {
    return (await this.files.list(this.store, 'gen-')).map((f) => f.name).sort();
  }

  get keyHex(): string {
    return hexOf(this.key);
  }
}

/** The same store with some methods replaced (bound, so stores with private fields work). */
export function wrapStore(files: FileStore, overrides: Partial<FileStore>): FileStore {
  const methods = ['join', 'dirname', 'basename', 'list', 'stat', 'read', 'create', 'rename', 'remove', 'ensureDir', 'freeSpace', 'restrictToOwner', 'lock'] as const;
  const out = Object.fromEntries(methods.map((m) => [m, (files[m] as (...a: unknown[]) => unknown).bind(files)])) as unknown as FileStore;
  return Object.assign(out, overrides);
}

export async function readAll(files: FileStore, path: string): Promise<Uint8Array> {
  const size = (await files.stat(path))?.size ?? 0;
  return files.read(path, 0, size);
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Pages of `next` whose bytes differ from the page at the same number in `prev` (or that `prev` lacks). */
export function differingPages(prev: Uint8Array, next: Uint8Array, pageSize = 4096): number {
  let n = 0;
  for (let at = 0; at < next.length; at += pageSize) {
    if (at >= prev.length || !equalBytes(prev.subarray(at, at + pageSize), next.subarray(at, at + pageSize))) n++;
  }
  return n;
}

/** A digest of every row: what the database held. */
async function contentOf(db: Database): Promise<string> {
  const rows = await db.query<{ id: number; v: string }>('SELECT id, hex(v) AS v FROM t ORDER BY id');
  const bytes = new TextEncoder().encode(rows.map((r) => `${r.id}:${r.v}`).join('\n'));
  return hexOf(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)));
}

export function pageStoreContract(label: string, host: PageStoreTestHost, runner: Runner = nodeTest as unknown as Runner): void {
  const { describe, it } = runner;
  describe(`page store: ${label}`, { timeout: 120_000 }, () => {
    it('generations restore byte for byte to what the database was, open, and hold its rows then', async () => {
      const f = await new Fixture(host).setup();
      const contents = new Map<string, string>();
      const results: GenerationResult[] = [];
      const steps = [
        async () => {},
        () => f.change(5),
        () => f.db.exec('WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 400) INSERT INTO t (v) SELECT randomblob(120) FROM c'), // grows
        () => f.db.exec('DELETE FROM t WHERE id % 2 = 0; VACUUM'), // shrinks: fewer pages than its parent
        () => f.change(1),
      ];
      for (const step of steps) {
        await step();
        const content = await contentOf(f.db);
        const r = await f.backup();
        contents.set(r.generation, content);
        results.push(r);
      }
      await f.db.close();
      assert.deepEqual(results.map((r) => r.generation), ['1', '2', '3', '4', '5']);
      assert.equal(results[0]!.full, true);
      assert.equal(results[0]!.pagesWritten, results[0]!.pageCount);
      assert.equal(results[1]!.full, false);
      // Exactly the pages whose bytes changed are written: counted here independently, page by page.
      for (let i = 1; i < results.length; i++) {
        const changed = differingPages(f.snapshots.get(String(i))!, f.snapshots.get(String(i + 1))!);
        assert.equal(results[i]!.pagesWritten, changed, `generation ${i + 1} wrote the ${changed} pages that changed`);
      }
      assert.ok(results[1]!.bytesWritten < results[1]!.pageCount * 4096 * 0.2, `an incremental generation writes a fraction of the database (${results[1]!.pagesWritten} of ${results[1]!.pageCount} pages)`);
      assert.ok(results[3]!.pageCount < results[2]!.pageCount, 'the vacuumed database is smaller');
      for (const [generation, content] of contents) {
        const restored = await f.restoresExactly(generation);
        const db = await host.open(restored, { key: f.key, readonly: true });
        assert.deepEqual(await db.query('PRAGMA quick_check'), [{ quick_check: 'ok' }]);
        assert.equal(await contentOf(db), content, `generation ${generation} holds the rows the database had`);
        await db.close();
        if (host.nativeRows) {
          const rows = host.nativeRows(await readAll(f.files, restored), f.keyHex, 'SELECT count(*) AS n FROM t');
          assert.equal(rows.length, 1, 'native SQLCipher opens the restored file');
        }
      }
      const list = await listGenerations(f.files, f.store, f.key);
      assert.equal(list.head, '5');
      assert.deepEqual(list.problems, []);
      assert.deepEqual(list.generations.map((g) => [g.generation, g.state, g.parent, g.full]), [
        ['5', 'ok', '4', false], ['4', 'ok', '3', false], ['3', 'ok', '2', false], ['2', 'ok', '1', false], ['1', 'ok', null, true],
      ]);
      assert.equal(list.generations[0]!.createdAt, new Date(T0 + 4 * DAY).toISOString());
    });

    it('an unchanged database writes no page, only a manifest; exportGeneration streams the same bytes', async () => {
      const f = await new Fixture(host).setup(500);
      await f.backup();
      const again = await f.backup();
      assert.equal(again.pagesWritten, 0);
      assert.equal(again.full, false);
      assert.ok(again.bytesWritten < 4096, `only a manifest was written (${again.bytesWritten} bytes)`);
      const chunks: Uint8Array[] = [];
      for await (const chunk of exportGeneration(f.files, f.store, 'latest', f.key)) chunks.push(chunk.slice());
      const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      chunks.reduce((at, c) => (all.set(c, at), at + c.length), 0);
      assert.ok(equalBytes(all, f.snapshots.get('2')!));
      assert.deepEqual(await verifyGeneration(f.files, f.store, '2', f.key), { ok: true, generation: '2', pages: all.length / 4096, bytes: all.length, problems: [] });
      await f.db.close();
    });

    it('a new key (password change) makes a full generation; the old key cannot read it; purging removes the old generations and their packs', async () => {
      const f = await new Fixture(host).setup(800);
      await f.backup();
      await f.change(3);
      await f.backup();
      const oldKey = f.key.slice();
      const newKey = crypto.getRandomValues(new Uint8Array(32));
      await f.db.rekey({ key: newKey });
      f.key.set(newKey);
      const r = await f.backup({ purgeOtherKeys: false });
      assert.equal(r.full, true, 'the first generation under a new key is full');
      assert.equal(r.pagesWritten, r.pageCount);
      const before = await listGenerations(f.files, f.store, f.key);
      assert.deepEqual(before.generations.map((g) => g.state), ['ok', 'foreign-key', 'foreign-key']);
      assert.deepEqual(before.problems, []);
      assert.equal((await verifyGeneration(f.files, f.store, r.generation, oldKey)).ok, false);
      assert.deepEqual((await verifyGeneration(f.files, f.store, r.generation, oldKey) as { reason: string }).reason, 'wrong-key');
      await f.change(2);
      const next = await f.backup({ purgeOtherKeys: true });
      assert.equal(next.full, false, 'the generation after it is incremental again');
      assert.deepEqual(next.cleanup.deleted.sort(), ['1', '2']);
      assert.deepEqual(await f.manifests(), ['gen-0000000003.manifest', 'gen-0000000004.manifest']);
      assert.deepEqual(await f.everyRetainedRestores(), ['4', '3']);
      assert.equal((await listGenerations(f.files, f.store, oldKey)).generations.every((g) => g.state === 'foreign-key'), true);
      // A password change whose new backup failed: the old generations go anyway, with no generation under the new key yet.
      const newer = crypto.getRandomValues(new Uint8Array(32));
      const purged = await applyRetention(f.files, f.store, newer, {}, { now: new Date(T0 + 9 * DAY), purgeOtherKeys: true });
      assert.deepEqual(purged.deleted.sort(), ['3', '4']);
      assert.deepEqual(await f.manifests(), []);
      assert.deepEqual(await f.packs(), [], 'their packs went with them');
      await f.db.close();
    });

    it('a new page size or salt makes a full generation', async () => {
      const f = await new Fixture(host).setup(500);
      await f.backup();
      await f.db.close();
      // The same raw key, a new file: a new salt, and here a new page size too.
      await f.files.remove(f.dbPath);
      f.cipher = { pageSize: 8192 };
      f.db = await host.open(f.dbPath, { key: f.key, create: true, cipher: f.cipher });
      await f.db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB); INSERT INTO t VALUES (1, randomblob(10))');
      const r = await backupGeneration(f.files, f.store, await f.snapshot(), f.key, { pageSize: 8192 }, { now: new Date(T0 + DAY), packBytes: PACK });
      assert.equal(r.full, true);
      assert.equal(r.pagesWritten, r.pageCount);
      const list = await listGenerations(f.files, f.store, f.key);
      assert.deepEqual(list.generations.map((g) => [g.generation, g.pageSize, g.parent]), [['2', 8192, '1'], ['1', 4096, null]]);
      await f.db.close();
    });

    it('retention by count drops generations and their packs; a repack keeps every kept generation exact', async () => {
      const f = await new Fixture(host).setup(4000);
      for (let i = 0; i < 6; i++) {
        await f.change(40);
        await f.backup({ retention: { keepLast: 4 }, repackBelow: 0 });
      }
      assert.deepEqual(await f.manifests(), ['gen-0000000003.manifest', 'gen-0000000004.manifest', 'gen-0000000005.manifest', 'gen-0000000006.manifest']);
      assert.deepEqual(await f.everyRetainedRestores(), ['6', '5', '4', '3']);
      const packsBefore = await f.packs();
      const r = await applyRetention(f.files, f.store, f.key, { keepLast: 1 }, { now: new Date(T0 + 30 * DAY), repackBelow: 0.9, packBytes: PACK });
      assert.deepEqual(r.warnings, []);
      assert.deepEqual(r.deleted.sort(), ['3', '4', '5']);
      assert.ok(r.repack.packs > 0 && r.repack.manifestsRewritten === 1, JSON.stringify(r.repack));
      assert.ok((await f.packs()).length < packsBefore.length, 'fewer packs after the repack');
      assert.deepEqual(await f.everyRetainedRestores(), ['6']);
      // Unreferenced packs are gone: every pack left is named by the one manifest.
      const list = await listGenerations(f.files, f.store, f.key);
      assert.equal(list.generations.length, 1);
      await f.db.close();
    });

    it('a backup looks for packs to repack only in every repackEvery-th generation, and then keeps every kept generation exact', async () => {
      const f = await new Fixture(host).setup(3000);
      const repacked: string[] = [];
      for (let i = 0; i < 7; i++) {
        await f.change(80);
        const r = await f.backup({ retention: { keepLast: 2 }, repackBelow: 0.95, repackEvery: 3 });
        if (r.cleanup.repack.packs) repacked.push(r.generation);
      }
      // Generations 3 and 6 delete one and look (packs of the deleted ones are mostly dead at 0.95); the others delete without looking.
      assert.deepEqual(repacked, ['3', '6']);
      assert.deepEqual(await f.everyRetainedRestores(), ['7', '6']);
      await assert.rejects(f.backup({ repackEvery: 0 }), { code: 'INVALID_ARGUMENT' });
      await f.db.close();
    });

    it('with daily retention, the repackEvery-th generation looks for packs to repack though it deletes nothing itself', async () => {
      const f = await new Fixture(host).setup(3000);
      const day = (n: number) => new Date(T0 + n * DAY);
      await f.change(80);
      await f.backup({ now: day(0), retention: { keepLast: 0, daily: 2 }, repackBelow: 0.95, repackEvery: 3 });
      await f.change(80);
      // The same day: generation 2 drops generation 1 (the newest of a day is kept).
      const second = await f.backup({ now: day(0), retention: { keepLast: 0, daily: 2 }, repackBelow: 0.95, repackEvery: 3 });
      assert.deepEqual(second.cleanup.deleted, ['1']);
      await f.change(80);
      const third = await f.backup({ now: day(1), retention: { keepLast: 0, daily: 2 }, repackBelow: 0.95, repackEvery: 3 });
      assert.deepEqual(third.cleanup.deleted, [], 'generation 3 deletes nothing');
      assert.ok(third.cleanup.repack.packs > 0, 'but looks, and repacks generation 1\'s mostly dead packs');
      assert.deepEqual(await f.everyRetainedRestores(), ['3', '2']);
      await f.db.close();
    });

    it('a manifest renamed into place whose rename then fails keeps its packs: the generation restores', async () => {
      const f = await new Fixture(host).setup(2000);
      await f.backup();
      await f.change(40);
      // The rename happens, then the store reports a failure (a directory sync that failed after it).
      const failingAfterRename = new Proxy(f.files, {
        get: (target, name) => (name === 'rename'
          ? async (from: string, to: string) => {
            await target.rename(from, to);
            throw new Error('directory sync failed');
          }
          : typeof target[name as keyof FileStore] === 'function' ? (target[name as keyof FileStore] as Function).bind(target) : target[name as keyof FileStore]),
      });
      await assert.rejects(f.backup({}, f.key, failingAfterRename), /directory sync failed/);
      const v = await verifyGeneration(f.files, f.store, 'latest', f.key);
      assert.deepEqual([v.ok, v.ok && v.generation], [true, '2'], JSON.stringify(v));
      await f.db.close();
    });

    it('refuses bad input with typed errors and writes nothing', async () => {
      const f = await new Fixture(host).setup(100);
      const snap = await f.snapshot();
      await assert.rejects(backupGeneration(f.files, f.store, snap, new Uint8Array(16), {}, { now: new Date() }), { code: 'INVALID_ARGUMENT' });
      await assert.rejects(backupGeneration(f.files, f.store, f.files.join(f.dir, 'nope.db'), f.key, {}, { now: new Date() }), { code: 'NOT_FOUND' });
      await assert.rejects(backupGeneration(f.files, f.store, snap, crypto.getRandomValues(new Uint8Array(32)), {}, { now: new Date() }), { code: 'WRONG_KEY' });
      await assert.rejects(restoreGeneration(f.files, f.store, 'x', f.key, f.files.join(f.dir, 'r.db')), { code: 'INVALID_ARGUMENT' });
      await assert.rejects(restoreGeneration(f.files, f.store, 'latest', f.key, f.files.join(f.dir, 'r.db')), { code: 'NOT_FOUND' });
      assert.deepEqual(await f.manifests(), []);
      assert.deepEqual(await f.packs(), []);
      assert.equal(await f.files.stat(f.files.join(f.dir, 'r.db')), null);
      await discard(f.files, snap);
      await f.db.close();
    });
  });
}

/** Restoring must fail with CORRUPT and leave nothing behind; verify must say why. */
export async function refused(f: Fixture, generation: string, expect: RegExp, reason = 'corrupt', key = f.key): Promise<void> {
  const v = await verifyGeneration(f.files, f.store, generation, key);
  assert.equal(v.ok, false, `verify accepted generation ${generation}`);
  if (!v.ok) {
    assert.equal(v.reason, reason, v.detail);
    assert.match(v.detail, expect);
  }
  const target = f.files.join(f.dir, `refused-${generation}.db`);
  await assert.rejects(restoreGeneration(f.files, f.store, generation, key, target), (e: Error) => e instanceof Error && (e as { code?: string }).code !== undefined);
  assert.equal(await f.files.stat(target), null, 'a refused restore leaves no file');
}

export { CorruptDatabaseError };
