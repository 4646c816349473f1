/**
 * Tampering with a page store, on every store: every changed, cut, swapped,
 * rolled-back or deleted pack or manifest is detected by verify and refused
 * by restore (which then leaves no file).
 */
import * as nodeTest from '../timeouts.ts';
import assert from 'node:assert/strict';
import type { FileStore } from '../../src/index.ts';
import { backupGeneration, applyRetention, listGenerations, restoreGeneration } from '../../src/backup/page-store/index.ts';
import { locate } from '../../src/backup/page-store/format.ts';
import { deriveStoreKeys, isOpened, type OpenedManifest } from '../../src/backup/page-store/seal.ts';
import { loadManifest, scanStore } from '../../src/backup/page-store/state.ts';
import { DAY, Fixture, PACK, readAll, refused, T0, wrapStore, type PageStoreTestHost, type Runner } from './page-store.contract.ts';

async function overwrite(files: FileStore, path: string, bytes: Uint8Array): Promise<void> {
  await files.remove(path);
  const w = await files.create(path);
  await w.write(bytes);
  await w.close();
}

/** Runs `fn` on the store, then puts every file of the store back as it was. */
async function tampered(f: Fixture, fn: () => Promise<void>): Promise<void> {
  const saved = new Map<string, Uint8Array>();
  for (const file of await f.files.list(f.store, '')) saved.set(file.name, await readAll(f.files, f.files.join(f.store, file.name)));
  try {
    await fn();
  } finally {
    for (const file of await f.files.list(f.store, '')) if (!saved.has(file.name)) await f.files.remove(f.files.join(f.store, file.name));
    for (const [name, bytes] of saved) await overwrite(f.files, f.files.join(f.store, name), bytes);
  }
}

async function manifestOf(f: Fixture, generation: string): Promise<OpenedManifest> {
  const keys = await deriveStoreKeys(f.key);
  const m = (await scanStore(f.files, f.store)).manifests.find((x) => x.seq === Number(generation))!;
  const opened = await loadManifest(f.files, keys, m);
  assert.ok(isOpened(opened));
  return opened;
}

/** Where page `pgno` of `generation` lives. */
async function placeOf(f: Fixture, generation: string, pgno: number): Promise<{ path: string; offset: number }> {
  const m = await manifestOf(f, generation);
  const { names, pack, slot } = locate(m.header.packs, m.body.runs, m.body.logical.pageCount);
  return { path: f.files.join(f.store, names[pack[pgno - 1]!]!), offset: slot[pgno - 1]! * 4096 };
}

async function edit(f: Fixture, path: string, change: (bytes: Uint8Array) => Uint8Array): Promise<void> {
  await overwrite(f.files, path, change((await readAll(f.files, path)).slice()));
}

const manifestPath = (f: Fixture, g: number) => f.files.join(f.store, `gen-${String(g).padStart(10, '0')}.manifest`);

export function pageStoreTamperContract(label: string, host: PageStoreTestHost, runner: Runner = nodeTest as unknown as Runner): void {
  const { describe, it } = runner;
  describe(`page store, tampered: ${label}`, { timeout: 120_000 }, () => {
    it('packs: flipped bits, cut, deleted and swapped packs, moved pages, older page versions and a foreign salt are all detected', async () => {
      const f = await new Fixture(host).setup(2000);
      await f.backup();
      await f.change(8);
      await f.backup();
      await f.change(8);
      const last = await f.backup();
      // A page gen 3 wrote (page 1 changes with every commit), one it shares with gen 1, and the last page.
      const pages = [1, 2, last.pageCount];
      const cases: Array<[string, () => Promise<void>, RegExp]> = [];
      for (const pgno of pages) {
        for (const [what, at] of [['ciphertext', 100], ['IV', 4096 - 80 + 3], ['HMAC', 4096 - 64 + 10], ['HMAC end', 4095]] as const) {
          cases.push([`flip ${what} of page ${pgno}`, async () => {
            const p = await placeOf(f, '3', pgno);
            await edit(f, p.path, (b) => (b[p.offset + at]! ^= 0x10, b));
          }, new RegExp(`page ${pgno} failed its HMAC check`)]);
        }
      }
      cases.push(['cut the last pack short', async () => {
        const p = await placeOf(f, '3', last.pageCount);
        await edit(f, p.path, (b) => b.subarray(0, p.offset + 2000));
      }, /cut short/]);
      cases.push(['delete a pack', async () => void (await f.files.remove((await placeOf(f, '3', 1)).path)), /is missing/]);
      cases.push(['swap two packs', async () => {
        const a = await placeOf(f, '3', 1);
        const b = await placeOf(f, '3', last.pageCount);
        assert.notEqual(a.path, b.path);
        const [ba, bb] = [await readAll(f.files, a.path), await readAll(f.files, b.path)];
        await overwrite(f.files, a.path, bb);
        await overwrite(f.files, b.path, ba);
      }, /failed its HMAC check|salt|cut short/]); // page 1's place gets another page: its salt bytes differ first
      cases.push(['swap two pages in a pack', async () => {
        const p = await placeOf(f, '3', 2);
        await edit(f, p.path, (b) => {
          const other = p.offset === 0 ? 4096 : 0;
          const page = b.slice(p.offset, p.offset + 4096);
          b.copyWithin(p.offset, other, other + 4096);
          b.set(page, other);
          return b;
        });
      }, /failed its HMAC check/]);
      cases.push(['an older, authentic version of page 1 in its place', async () => {
        const p = await placeOf(f, '3', 1);
        const older = f.snapshots.get('2')!.subarray(0, 4096);
        await edit(f, p.path, (b) => (b.set(older, p.offset), b));
      }, /not the version this generation recorded/]);
      cases.push(['page 1 with another salt', async () => {
        const p = await placeOf(f, '3', 1);
        await edit(f, p.path, (b) => (b[p.offset + 3]! ^= 1, b));
      }, /salt/]);
      for (const [name, tamper, expect] of cases) {
        await tampered(f, async () => {
          await tamper();
          await refused(f, '3', expect).catch((e) => assert.fail(`${name}: ${(e as Error).message}`));
        });
      }
      // Untampered again: all good.
      assert.deepEqual(await f.everyRetainedRestores(), ['3', '2', '1']);
      await f.db.close();
    });

    it('manifests: flipped, cut, appended, swapped, deleted, rolled back and replaced manifests are all detected', async () => {
      const f = await new Fixture(host).setup(600);
      for (let i = 0; i < 3; i++) {
        await f.change(3);
        await f.backup();
      }
      const head = await readAll(f.files, manifestPath(f, 3));
      const problems = async () => (await listGenerations(f.files, f.store, f.key)).problems.join('\n');

      // magic, seq, key id (then it reads as another key's), pack list, ciphertext, tag
      const second = (await readAll(f.files, manifestPath(f, 2))).length;
      for (const at of [5, 14, 30, 45, second - 40, second - 1]) {
        await tampered(f, async () => {
          await edit(f, manifestPath(f, 2), (b) => (b[at]! ^= 0x01, b));
          const keyId = at >= 20 && at < 36;
          await refused(f, '2', /./, keyId ? 'wrong-key' : 'damaged');
          assert.match(await problems(), keyId ? /gen-0000000002\.manifest was replaced by a manifest under another key/ : /gen-0000000002\.manifest is damaged/);
        });
      }
      await tampered(f, async () => {
        await edit(f, manifestPath(f, 2), (b) => b.subarray(0, b.length - 7));
        await refused(f, '2', /truncated|authentication/, 'damaged');
      });
      await tampered(f, async () => {
        await edit(f, manifestPath(f, 2), (b) => new Uint8Array([...b, 1, 2, 3]));
        await refused(f, '2', /appended/, 'damaged');
      });
      await tampered(f, async () => {
        const [a, b] = [await readAll(f.files, manifestPath(f, 1)), await readAll(f.files, manifestPath(f, 2))];
        await overwrite(f.files, manifestPath(f, 1), b);
        await overwrite(f.files, manifestPath(f, 2), a);
        await refused(f, '1', /swapped/, 'damaged');
        await refused(f, '2', /swapped/, 'damaged');
      });
      await tampered(f, async () => {
        await f.files.remove(manifestPath(f, 2));
        await refused(f, '2', /not in the store/, 'missing');
        assert.match(await problems(), /gen-0000000002\.manifest is missing/);
      });
      // The head damaged: no backup builds on it.
      await tampered(f, async () => {
        await edit(f, manifestPath(f, 3), (b) => (b[b.length - 3]! ^= 4, b));
        await assert.rejects(f.backup(), /newest manifest .* is damaged/);
        assert.match(await problems(), /newest manifest gen-0000000003\.manifest is damaged/);
      });
      // Deleting the newest generation leaves a consistent store: only the anchor kept outside it tells.
      const anchor = { seq: 3, digest: (await listGenerations(f.files, f.store, f.key)).generations[0]!.digest! };
      await tampered(f, async () => {
        await f.files.remove(manifestPath(f, 3));
        assert.match((await listGenerations(f.files, f.store, f.key, { anchor })).problems.join(), /rolled back/);
        await assert.rejects(restoreGeneration(f.files, f.store, 'latest', f.key, f.files.join(f.dir, 'x.db'), { anchor }), /rolled back/);
        await assert.rejects(f.backup({ anchor }), /rolled back/);
      });
      // A manifest under another key, and a same-key manifest of another store, in place of generation 2.
      const other = await new Fixture(host).setup(600);
      await other.backup();
      await other.backup();
      await other.db.close();
      await tampered(f, async () => {
        await overwrite(f.files, manifestPath(f, 2), await readAll(f.files, manifestPath(other, 2)));
        await refused(f, '2', /another key/, 'wrong-key');
        assert.match(await problems(), /replaced by a manifest under another key/);
      });
      const otherSameKey = new Fixture(host);
      otherSameKey.key.set(f.key);
      await otherSameKey.setup(600);
      await otherSameKey.backup();
      await otherSameKey.backup();
      await otherSameKey.db.close();
      await tampered(f, async () => {
        await overwrite(f.files, manifestPath(f, 2), await readAll(f.files, manifestPath(otherSameKey, 2)));
        await refused(f, '2', /replaced or rolled back/, 'damaged');
        assert.match(await problems(), /not the generation the newest manifest recorded/);
        assert.match(await problems(), /parent gen-0000000002\.manifest is not the generation it was made from/);
      });
      // Rolling the head back to before a retention run: it lists a generation that is gone.
      await applyRetention(f.files, f.store, f.key, { keepLast: 2 }, { now: new Date(T0 + 10 * DAY), packBytes: PACK });
      assert.deepEqual(await f.everyRetainedRestores(), ['3', '2']);
      await tampered(f, async () => {
        await overwrite(f.files, manifestPath(f, 3), head);
        assert.match(await problems(), /gen-0000000001\.manifest is missing/);
      });
      await f.db.close();
    });

    it('a backup after a pack was lost or cut writes those pages again: the new generation is whole', async () => {
      const f = await new Fixture(host).setup(2000);
      await f.backup();
      const lost = await placeOf(f, '1', 2);
      const cut = await placeOf(f, '1', (await manifestOf(f, '1')).body.logical.pageCount);
      assert.notEqual(lost.path, cut.path);
      const lostPages = (await readAll(f.files, lost.path)).length / 4096;
      await f.files.remove(lost.path);
      await edit(f, cut.path, (b) => b.subarray(0, b.length - 4096));
      await f.change(1);
      const r = await f.backup();
      assert.equal(r.full, false);
      assert.ok(r.pagesWritten >= lostPages + 1, `${r.pagesWritten} pages written, ${lostPages} of them lost`);
      assert.match(r.warnings.join(), /written again/);
      await f.restoresExactly(r.generation);
      await refused(f, '1', /is missing|cut short/);
      await f.db.close();
    });

    it('a generation number committed by someone else meanwhile is never overwritten', async () => {
      const f = await new Fixture(host).setup(200);
      await f.backup();
      const snap = await f.snapshot();
      // Another writer (one without the lock) commits the same sequence number while ours is being written.
      const files = wrapStore(f.files, {
        create: async (path: string) => {
          if (f.files.basename(path).startsWith('gen-0000000002.manifest.')) await overwrite(f.files, manifestPath(f, 2), await readAll(f.files, manifestPath(f, 1)));
          return f.files.create(path);
        },
      });
      const theirs = async () => readAll(f.files, manifestPath(f, 2));
      const packsBefore = await f.packs();
      await assert.rejects(backupGeneration(files, f.store, snap, f.key, {}, { now: new Date(T0 + DAY), packBytes: PACK }), /appeared while this generation was being written/);
      assert.deepEqual(await theirs(), await readAll(f.files, manifestPath(f, 1)), 'the other writer\'s manifest is untouched');
      assert.deepEqual(await f.packs(), packsBefore, 'our packs were removed');
      await f.db.close();
    });
  });
}
