/**
 * Crashes at every step of a backup and of a garbage collection, on every
 * store: the store "dies" after its N-th change (a write cut in half, then
 * every call fails, so no cleanup runs — as when the process is killed), and
 * afterwards every kept generation restores byte for byte, the store reports
 * no problem, and the next run leaves no temporary file and no pack that no
 * manifest names. (test/page-store.test.ts also kills real processes.)
 */
import * as nodeTest from '../timeouts.ts';
import assert from 'node:assert/strict';
import type { FileStore, FileWriter } from '../../src/index.ts';
import type { BackupTarget } from '../../src/targets/target.ts';
import { applyRetention, backupGeneration, listGenerations } from '../../src/backup/page-store/index.ts';
import { scanStore } from '../../src/backup/page-store/state.ts';
import { DAY, Fixture, PACK, readAll, T0, wrapStore, type PageStoreTestHost, type Runner } from './page-store.contract.ts';

const TORTURE = !!(globalThis as { process?: { env?: Record<string, string> } }).process?.env?.TORTURE;

export class Crash extends Error {}

/** `files`, dying at its `afterChanges`-th change (create, write, close, rename, remove). */
export function crashingStore(files: FileStore, afterChanges: number): { store: FileStore; crashed: () => boolean } {
  let changes = 0;
  let dead = false;
  const alive = () => {
    if (dead) throw new Crash('the process died');
  };
  const change = () => {
    alive();
    if (changes++ >= afterChanges) {
      dead = true;
      return false;
    }
    return true;
  };
  const died = () => new Crash('the process died');
  const store = wrapStore(files, {
    list: async (d, p) => (alive(), files.list(d, p)),
    stat: async (p) => (alive(), files.stat(p)),
    read: async (p, o, l) => (alive(), files.read(p, o, l)),
    ensureDir: async (p) => (alive(), files.ensureDir(p)),
    rename: async (a, b) => { if (!change()) throw died(); return files.rename(a, b); },
    remove: async (p) => { if (!change()) throw died(); return files.remove(p); },
    create: async (p) => {
      if (!change()) throw died();
      const w = await files.create(p);
      const writer: FileWriter = {
        write: async (chunk) => {
          if (!change()) {
            await w.write(chunk.subarray(0, chunk.length >> 1)); // torn
            throw died();
          }
          return w.write(chunk);
        },
        close: async () => { if (!change()) throw died(); return w.close(); },
        abort: async () => (alive(), w.abort()),
      };
      return writer;
    },
  });
  return { store, crashed: () => dead };
}

/**
 * `target`, dying at its `afterChanges`-th change (put, remove), as a target
 * does when the process writing to it is killed: a put then lands whole or
 * not at all (on odd steps it lands and the answer is lost), and every
 * later call fails.
 */
export function crashingTarget(target: BackupTarget, afterChanges: number): { target: BackupTarget; crashed: () => boolean } {
  let changes = 0;
  let dead = false;
  const alive = () => {
    if (dead) throw new Crash('the process died');
  };
  const change = async (fn: () => Promise<unknown>) => {
    alive();
    if (changes++ < afterChanges) return;
    dead = true;
    if (afterChanges % 2) await fn();
    throw new Crash('the process died');
  };
  return {
    crashed: () => dead,
    target: {
      id: target.id,
      list: async (p) => (alive(), target.list(p)),
      stat: async (n) => (alive(), target.stat(n)),
      read: async (n, o, l) => (alive(), target.read(n, o, l)),
      put: async (n, size, source, onProgress) => {
        await change(() => target.put(n, size, source, onProgress));
        return target.put(n, size, source, onProgress);
      },
      remove: async (n) => {
        await change(() => target.remove(n));
        return target.remove(n);
      },
    },
  };
}

/** A host whose store dies where its real one would (under a target, not in the page store's own calls): see crashingTarget. */
export interface CrashTestHost extends PageStoreTestHost {
  crashing?(afterChanges: number): { store: FileStore; crashed: () => boolean };
}

/** After a crash: every kept generation exact, no problem reported; then a clean run leaves nothing stray. */
async function intact(f: Fixture): Promise<void> {
  await f.everyRetainedRestores();
}

async function nothingStray(f: Fixture): Promise<void> {
  const scan = await scanStore(f.files, f.store);
  assert.deepEqual(scan.tmps.map((t) => t.name), [], 'no temporary manifest is left');
  const named = new Set(scan.manifests.flatMap((m) => m.header!.packs));
  assert.deepEqual(scan.packs.filter((p) => !named.has(p.name)).map((p) => p.name), [], 'every pack is named by a manifest');
}

export function pageStoreCrashContract(label: string, host: CrashTestHost, runner: Runner = nodeTest as unknown as Runner): void {
  const { describe, it } = runner;
  describe(`page store, crashes: ${label}`, { timeout: 300_000 }, () => {
    it('a crash at any step of a backup leaves every earlier generation restorable; the next run cleans up', async () => {
      const f = await new Fixture(host).setup(1500);
      await f.backup();
      const stride = TORTURE ? 1 : 3;
      let points = 0;
      let committed = 0;
      for (let n = 0; ; n += stride) {
        await f.change(20);
        const seqBefore = Math.max(...(await scanStore(f.files, f.store)).manifests.map((m) => m.seq));
        const dying = host.crashing?.(n) ?? crashingStore(f.files, n);
        const snap = await f.snapshot();
        const snapBytes = await readAll(f.files, snap);
        try {
          await backupGeneration(dying.store, f.store, snap, f.key, {}, { now: new Date(T0 + ++f.day * DAY), packBytes: PACK, retention: { keepLast: 3 } });
        } catch (e) {
          if (!(e instanceof Crash)) throw e;
        }
        await f.files.remove(snap);
        const seqAfter = Math.max(...(await scanStore(f.files, f.store)).manifests.map((m) => m.seq));
        if (seqAfter > seqBefore) {
          f.snapshots.set(String(seqAfter), snapBytes);
          committed++;
        }
        points++;
        await intact(f);
        if (!dying.crashed()) break; // this run had fewer steps than n: every step was a crash point
        assert.ok(n < 400, 'a backup of this size takes fewer than 400 steps');
      }
      // The next, undisturbed run cleans up after all of them.
      await f.change(3);
      await f.backup({ retention: { keepLast: 3 } });
      await nothingStray(f);
      await intact(f);
      assert.ok(points > 5 && committed > 0, `${points} crash points, ${committed} of them after the commit`);
      console.log(`figures: ${label}: backup crashed at ${points} points (one change in ${stride}), ${committed} after its commit; every kept generation restored byte for byte after each`);
      await f.db.close();
    });

    it('a crash at any step of retention and repacking leaves every kept generation restorable', async () => {
      const f = await new Fixture(host).setup(3000);
      await f.backup();
      const stride = TORTURE ? 1 : 4;
      let points = 0;
      for (let n = 0; ; n += stride) {
        for (let i = 0; i < 2; i++) {
          await f.change(60);
          await f.backup({ repackBelow: 0 });
        }
        const dying = host.crashing?.(n) ?? crashingStore(f.files, n);
        try {
          // A crash mid-cleanup comes back as a warning, not a throw.
          await applyRetention(dying.store, f.store, f.key, { keepLast: 2 }, { now: new Date(T0 + ++f.day * DAY), packBytes: PACK, repackBelow: 0.95 });
        } catch (e) {
          if (!(e instanceof Crash)) throw e;
        }
        points++;
        await intact(f);
        if (!dying.crashed()) break;
        assert.ok(n < 2000, 'a collection of this size takes fewer than 2000 steps');
      }
      await applyRetention(f.files, f.store, f.key, { keepLast: 2 }, { now: new Date(T0 + ++f.day * DAY), packBytes: PACK, repackBelow: 0.95 });
      await nothingStray(f);
      const list = await listGenerations(f.files, f.store, f.key);
      assert.equal(list.generations.length, 2);
      assert.ok(points > 5, `${points} crash points`);
      console.log(`figures: ${label}: retention and repack crashed at ${points} points (one change in ${stride}); every kept generation restored byte for byte after each`);
      await f.db.close();
    });
  });
}
