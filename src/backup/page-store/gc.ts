/**
 * Retention and garbage collection, ordered so that a crash at any point
 * leaves every kept generation whole: the manifest that says what to keep is
 * written first, then expired manifests go, then repacks write new packs and
 * rewrite manifests to name them (each rewrite an atomic replace), and only
 * then are packs no manifest names deleted.
 */
import { CorruptDatabaseError } from '../../engine/errors.ts';
import type { FileStore, HeldLock } from '../../files/file-store.ts';
import { locate, RUN_FIELDS, toRuns, type RetainedEntry } from './format.ts';
import { toHex } from '../../engine/bytes.ts';
import { DEFAULT_PACK_BYTES, PackWriter } from './packs.ts';
import { fingerprintOf, PageChecker, type OnPageStoreProgress } from './pages.ts';
import { planRetention, validateRetention, type RetentionSettings } from './retention.ts';
import { deriveStoreKeys, isOpened, type OpenedManifest, type StoreKeys } from './seal.ts';
import { findHead, holdingOf, isOurs, loadManifest, scanStore, writeManifest, type Head, type Holding, type Scan, type StoredManifest } from './state.ts';

const REPACK_MAX_BYTES = 16 << 20;
const PIECE_BYTES = 1 << 20;

export interface CleanupResult {
  /** Generations whose manifests were deleted (expired, or under another key when purging). */
  deleted: string[];
  packsDeleted: number;
  bytesFreed: number;
  repack: { packs: number; pagesMoved: number; manifestsRewritten: number };
  /** What could not be done; the store stays consistent (the next run tries again). */
  warnings: string[];
}

export interface CleanupOptions {
  purgeOtherKeys?: boolean;
  /** Repack packs whose live share is below this (default 0.5; 0 never repacks). */
  repackBelow?: number;
  /** At most this much live data is moved per run, emptiest packs first (default 16 MiB): bounded time and memory. */
  repackMaxBytes?: number;
  packBytes?: number;
  onProgress?: OnPageStoreProgress;
  /** Look for packs to repack even when no manifest was deleted (applyRetention does; a backup does not). */
  repackAlways?: boolean;
  /** The newest manifest, just written and read back by the caller (saves reading it again). */
  head?: OpenedManifest;
  /** The store as it is, listed by the caller under the lock (saves listing it again). */
  scan?: Scan;
}

/** Removes temporary manifests of writers that cannot still be at work. */
export async function removeStaleTmps(store: FileStore, scan: Scan, holding: Holding): Promise<void> {
  for (const t of scan.tmps) {
    if (t.token !== holding.token && (await holding.mayBeAlive(t.token))) continue;
    await store.remove(t.path).catch(() => false);
  }
}

/**
 * Applies `retention` to the generations the newest manifest retains: the
 * newest manifest is resealed with the shorter list first, then the rest is
 * collected. Callers hold the store's lock.
 */
export async function applyRetention(
  store: FileStore, dir: string, key: Uint8Array, retention: RetentionSettings,
  options: CleanupOptions & { now: Date; lock?: HeldLock },
): Promise<CleanupResult> {
  validateRetention(retention);
  const keys = await deriveStoreKeys(key);
  const holding = holdingOf(options.lock);
  const scan = await scanStore(store, dir);
  await removeStaleTmps(store, scan, holding);
  const head = await findHead(store, keys, scan);
  if (head.kind === 'damaged') throw new CorruptDatabaseError(`page store: the newest manifest ${head.stored.name} is damaged (${head.detail})`);
  if (head.kind === 'ok') {
    const before: RetainedEntry[] = head.manifest.body.retained;
    const keep = planRetention(before, retention, options.now);
    if (keep.size < before.length) {
      const body = { ...head.manifest.body, retained: before.filter((e) => keep.has(e.seq)) };
      await writeManifest(store, dir, keys, holding, head.manifest.header.packs, body, true, { digest: head.manifest.digest });
    }
  }
  return cleanupStore(store, dir, key, keys, holding, { repackAlways: true, ...options });
}

/** Deletes what the newest manifest no longer retains, repacks, and collects unnamed packs. Never throws: problems become warnings. */
export async function cleanupStore(
  store: FileStore, dir: string, key: Uint8Array, keys: StoreKeys, holding: Holding, options: CleanupOptions,
): Promise<CleanupResult> {
  const result: CleanupResult = { deleted: [], packsDeleted: 0, bytesFreed: 0, repack: { packs: 0, pagesMoved: 0, manifestsRewritten: 0 }, warnings: [] };
  try {
    let scan = options.scan ?? (await scanStore(store, dir));
    await removeStaleTmps(store, scan, holding);
    const newest = scan.manifests[0];
    const known = options.head;
    const head: Head = known && newest && isOurs(newest, keys) && newest.seq === known.body.logical.seq
      ? { kind: 'ok', stored: newest, manifest: known } : await findHead(store, keys, scan);
    if (head.kind === 'damaged') {
      result.warnings.push(`nothing collected: the newest manifest ${head.stored.name} is damaged (${head.detail})`);
      return result;
    }
    // Ours that the head no longer retains; with purgeOtherKeys (after a password change), every other one too — even with no head of ours yet.
    const retained = new Set(head.kind === 'ok' ? head.manifest.body.retained.map((e) => e.seq) : []);
    const doomed = scan.manifests.filter((m) => (head.kind === 'ok' && m === head.stored ? false
      : isOurs(m, keys) ? head.kind === 'ok' && !retained.has(m.seq) : !!options.purgeOtherKeys));
    if (doomed.length) await holding.check();
    for (const m of doomed) {
      if (await store.remove(m.path)) {
        result.deleted.push(String(m.seq));
        result.bytesFreed += m.size;
      }
    }
    // The lock keeps the store as listed, less what was just deleted.
    if (doomed.length) scan = { ...scan, manifests: scan.manifests.filter((m) => !doomed.includes(m)) };
    if (head.kind === 'ok') {
      // Packs only lose live pages when manifests go: without a delete there is nothing new to repack.
      const repackBelow = options.repackBelow ?? 0.5;
      if (repackBelow > 0 && (result.deleted.length > 0 || options.repackAlways)) {
        await repack(store, dir, key, keys, holding, scan, repackBelow, options.packBytes ?? DEFAULT_PACK_BYTES, options.repackMaxBytes ?? REPACK_MAX_BYTES, result);
      }
    }
    // A repack wrote packs and rewrote manifests: listed again.
    if (result.repack.pagesMoved || result.repack.manifestsRewritten) scan = await scanStore(store, dir);
    const unreadable = scan.manifests.find((m) => !m.header);
    if (unreadable) {
      result.warnings.push(`packs not collected: ${unreadable.name} is damaged, so which packs it needs is unknown`);
      return result;
    }
    const named = new Set(scan.manifests.flatMap((m) => m.header!.packs));
    let checked = false;
    for (const p of scan.packs) {
      if (named.has(p.name) || (p.token !== holding.token && (await holding.mayBeAlive(p.token)))) continue;
      if (!checked) await holding.check();
      checked = true;
      if (await store.remove(p.path)) {
        result.packsDeleted++;
        result.bytesFreed += p.size;
      }
    }
    await options.onProgress?.({ phase: 'cleanup', bytesDone: 1, bytesTotal: 1 });
  } catch (e) {
    result.warnings.push(`cleanup stopped: ${(e as Error).message}`);
  }
  return result;
}

/**
 * Copies the live pages of mostly-dead packs into new packs (checked at their
 * page numbers on the way), then rewrites every manifest that named them.
 * The old packs are left for the collection that follows: by then no
 * manifest names them. Packs named by manifests we cannot rewrite (another
 * key, damaged) are left alone. Manifests are read one at a time (a few MB
 * each at 500 MB), in three passes: which slots live, which pages move,
 * rewrite.
 */
async function repack(
  store: FileStore, dir: string, key: Uint8Array, keys: StoreKeys, holding: Holding, scan: Scan,
  repackBelow: number, packBytes: number, repackMaxBytes: number, result: CleanupResult,
): Promise<void> {
  if (scan.manifests.some((m) => !m.header)) return;
  const pinned = new Set<string>();
  for (const m of scan.manifests) if (!isOurs(m, keys)) m.header!.packs.forEach((p) => pinned.add(p));
  const ours: StoredManifest[] = [];
  const each = async (manifests: StoredManifest[], fn: (m: OpenedManifest, stored: StoredManifest) => Promise<void> | void) => {
    for (const stored of manifests) {
      const opened = await loadManifest(store, keys, stored);
      if (!isOpened(opened)) throw new CorruptDatabaseError(`repack stopped: ${stored.name} is damaged (${opened.detail})`);
      await fn(opened, stored);
    }
  };

  // Which slots of each pack any generation names: a bitmap per pack, marked run by run.
  const sizes = new Map(scan.packs.map((p) => [p.name, p.size]));
  const usage = new Map<string, { pageSize: number; used: Uint8Array }>();
  for (const m of scan.manifests.filter((x) => isOurs(x, keys))) {
    const opened = await loadManifest(store, keys, m);
    if (!isOpened(opened)) {
      m.header!.packs.forEach((p) => pinned.add(p)); // damaged: its packs stay as they are
      continue;
    }
    ours.push(m);
    const { pageSize } = opened.body.logical;
    // Each of its packs' bitmap, looked up once per pack rather than once per run (100 000 runs in a manifest at 1 GB).
    const bitmaps = opened.header.packs.map((name) => {
      let u = usage.get(name);
      const size = sizes.get(name);
      if (!u && size !== undefined) usage.set(name, (u = { pageSize, used: new Uint8Array(Math.ceil(size / pageSize)) }));
      return u?.used ?? null; // a missing pack: verify reports it, nothing to move
    });
    const runs = opened.body.runs;
    for (let r = 0; r < runs.length; r += RUN_FIELDS) bitmaps[runs[r + 2]!]?.fill(1, runs[r + 3]!, runs[r + 3]! + runs[r + 1]!);
  }
  // The emptiest packs first, up to a bounded amount of live data per run (the rest waits for the next run).
  const liveSlots = (used: Uint8Array) => used.reduce((n, b) => n + b, 0);
  const below = [...usage].map(([name, u]) => ({ name, live: liveSlots(u.used), slots: u.used.length, pageSize: u.pageSize }))
    .filter((p) => !pinned.has(p.name) && p.live < repackBelow * p.slots)
    .sort((a, b) => a.live / a.slots - b.live / b.slots || a.name.localeCompare(b.name));
  const chosen = new Set<string>();
  let budget = repackMaxBytes;
  for (const p of below) {
    if (chosen.size && p.live * p.pageSize > budget) break;
    chosen.add(p.name);
    budget -= p.live * p.pageSize;
  }
  if (chosen.size === 0) return;

  // The pages to move, each with what checks it: its number, fingerprint, and its generation's salt and settings.
  interface Moving { pgno: number; fingerprint: Uint8Array; checker: PageChecker }
  const live = new Map<string, { pageSize: number; slots: Map<number, Moving> }>();
  const checkers = new Map<string, PageChecker>();
  const affected: StoredManifest[] = [];
  await each(ours, async (m, stored) => {
    const l = m.body.logical;
    const id = `${toHex(l.salt)}/${l.pageSize}/${l.hmacAlgorithm}/${l.kdfAlgorithm}`;
    let checker = checkers.get(id);
    if (!checker) checkers.set(id, (checker = await PageChecker.create(key, l)));
    let touches = false;
    const runs = m.body.runs;
    const repacked = m.header.packs.map((name) => chosen.has(name));
    for (let r = 0; r < runs.length; r += RUN_FIELDS) {
      if (!repacked[runs[r + 2]!]) continue;
      const firstPgno = runs[r]!, count = runs[r + 1]!, firstSlot = runs[r + 3]!;
      const name = m.header.packs[runs[r + 2]!]!;
      touches = true;
      let entry = live.get(name);
      if (!entry) live.set(name, (entry = { pageSize: l.pageSize, slots: new Map() }));
      for (let k = 0; k < count; k++) {
        if (!entry.slots.has(firstSlot + k)) entry.slots.set(firstSlot + k, { pgno: firstPgno + k, fingerprint: fingerprintOf(l, firstPgno + k).slice(), checker });
      }
    }
    if (touches) affected.push(stored);
  });

  // Pack by pack (each read whole: a few MiB), live pages in slot order, checked, into new packs.
  const moved = new Map<string, { pack: string; slot: number }>();
  for (const pageSize of new Set([...live.values()].map((e) => e.pageSize))) {
    const writer = new PackWriter(store, dir, holding.token, pageSize, packBytes);
    try {
      for (const [name, e] of [...live].filter(([, c]) => c.pageSize === pageSize).sort(([a], [b]) => a.localeCompare(b))) {
        // Read in pieces, and only the pieces holding live pages.
        const piecePages = Math.max(1, Math.floor(PIECE_BYTES / pageSize));
        let piece: { first: number; bytes: Uint8Array } = { first: -1, bytes: new Uint8Array(0) };
        for (const [slot, at] of [...e.slots].sort(([a], [b]) => a - b)) {
          const first = slot - (slot % piecePages);
          if (piece.first !== first) piece = { first, bytes: await store.read(store.join(dir, name), first * pageSize, piecePages * pageSize) };
          const page = piece.bytes.subarray((slot - first) * pageSize, (slot - first + 1) * pageSize);
          const problem = page.length === pageSize ? at.checker.problem(page, at.pgno, at.fingerprint) : 'the pack is cut short';
          if (problem) throw new CorruptDatabaseError(`repack stopped: ${name} slot ${slot}: ${problem}`);
          await writer.add(page, at.pgno, (_, pack, to) => moved.set(`${name}#${slot}`, { pack, slot: to }));
          result.repack.pagesMoved++;
        }
      }
      await writer.finish();
    } catch (e) {
      await writer.discard();
      throw e;
    }
  }
  result.repack.packs = live.size;

  // Rewrite the manifests that name a repacked pack: same generation (same digest), new places.
  await each(affected, async (m) => {
    const n = m.body.logical.pageCount;
    const { names, pack, slot } = locate(m.header.packs, m.body.runs, n);
    const newNames: string[] = [];
    const index = new Map<string, number>();
    const indexOf = (name: string) => index.get(name) ?? (index.set(name, newNames.push(name) - 1), newNames.length - 1);
    const repacked = names.map((name) => chosen.has(name));
    const kept = new Int32Array(names.length).fill(-1); // a kept pack's new index, looked up once per pack, not per page
    const newPack = new Uint32Array(n);
    const newSlot = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const p = pack[i]!;
      const to = repacked[p] ? moved.get(`${names[p]}#${slot[i]}`) : undefined;
      if (to) {
        newPack[i] = indexOf(to.pack);
        newSlot[i] = to.slot;
      } else {
        newPack[i] = kept[p]! >= 0 ? kept[p]! : (kept[p] = indexOf(names[p]!));
        newSlot[i] = slot[i]!;
      }
    }
    await writeManifest(store, dir, keys, holding, newNames, { ...m.body, runs: toRuns(newPack, newSlot, n) }, true, { digest: m.digest });
    result.repack.manifestsRewritten++;
  });
}
