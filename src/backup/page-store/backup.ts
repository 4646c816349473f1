/**
 * Making a generation from a snapshot of the database (a copy, or the live
 * file read in place: snapshot.ts's readAtRest), in two passes: the first
 * records every page's HMAC (the trailer SQLCipher rewrites with a fresh IV
 * on every write of a page) and needs no key; pages whose HMAC matches the
 * parent generation's record are referenced where they already are; the
 * second reads every other page again, checks it at its page number and
 * writes it into new packs; the manifest is written last and its appearance
 * commits the generation. Nothing is decrypted and nothing is hashed but
 * changed pages.
 */
import { resolveSettings, type CipherSettings } from '../../engine/cipher.ts';
import type { JournalMode } from '../../engine/database.ts';
import { CorruptDatabaseError, DatabaseNotFoundError, InvalidArgumentError, WrongKeyError } from '../../engine/errors.ts';
import { openReader, type FileStore, type HeldLock } from '../../files/file-store.ts';
import { createPageVerifier, hmacOffsetOf, type PageMacs } from '../page-check.ts';
import { SnapshotChangedError } from '../snapshot.ts';
import { cleanupStore, removeStaleTmps, type CleanupResult } from './gc.ts';
import { encodeLogical, FINGERPRINT_BYTES, locate, manifestName, SALT_BYTES, toRuns, type Logical, type RetainedEntry } from './format.ts';
import { bytesEqual, toHex } from '../../engine/bytes.ts';
import { DEFAULT_PACK_BYTES, PackWriter } from './packs.ts';
import { yielder, type OnPageStoreProgress } from './pages.ts';
import { planRetention, validateRetention, type RetentionSettings } from './retention.ts';
import { deriveStoreKeys, generationDigest, type OpenedManifest } from './seal.ts';
import { findHead, holdingOf, scanStore, writeManifest, type Anchor, type Scan } from './state.ts';

const CHUNK_BYTES = 4 << 20;
/**
 * Pass 1's reads: small enough that a host reads them on the calling thread
 * (NodeFileStore: below 1 MiB), fastest for a loop with nothing else to do:
 * 1 GB in 150-220 ms here, against 400-520 in 4 MiB reads through Node's
 * thread pool, where they queued behind the key derivation and the listing.
 */
const SCAN_CHUNK_BYTES = 512 << 10;
const DEFAULT_REPACK_EVERY = 7;

export interface BackupGenerationOptions {
  /** The generation's time (retention judges age by it). */
  now: Date;
  /** Awaited once per 4 MiB chunk of the snapshot. */
  onProgress?: OnPageStoreProgress;
  /** The lock every writer of this store holds; its token names our temporary files and packs. */
  lock?: HeldLock;
  /** Applied as the generation commits; without it every earlier generation stays. */
  retention?: RetentionSettings;
  /** Pack size (default 4 MiB). */
  packBytes?: number;
  /** Repack packs whose live share fell below this (default 0.5; 0 never repacks). */
  repackBelow?: number;
  /** At most this much live data is repacked per run (default 16 MiB). */
  repackMaxBytes?: number;
  /**
   * Look for packs to repack only in generations whose number is a multiple
   * of this, once any generation was deleted (default 7: weekly, for daily
   * backups; 1: every time). Looking reads every retained manifest, and a repack
   * rewrites each that names a repacked pack: 30 manifests of 4 MB at 1 GB,
   * 1 s to look and 3-6 s to repack here, where a generation otherwise takes
   * 0.5 s. Packs lose live pages a generation at a time, so a week's wait
   * costs little space.
   */
  repackEvery?: number;
  /** After a password change: delete every generation not under this key once this one is committed. */
  purgeOtherKeys?: boolean;
  /** The database's journal mode, recorded for whoever restores it (default 'delete'). */
  journalMode?: JournalMode;
  /** The newest generation the caller saw committed: refuse to build on a store rolled back past it. */
  anchor?: Anchor | Promise<Anchor | undefined>;
  /** Write every page, even if the parent has it. */
  full?: boolean;
  /**
   * Called once every new page is packed, before the manifest is written: a
   * snapshot read in place checks here that nothing wrote to it meanwhile
   * (throwing, it leaves nothing behind).
   */
  beforeCommit?: () => Promise<void>;
  /** The host's faster page MAC (BackupHost.pageMacs) for the changed pages. */
  pageMacs?: PageMacs;
  /** When the parent holds exactly these pages (same salt, count, every trailer), commit nothing: the result says `unchanged`. */
  skipUnchanged?: boolean;
}

export interface GenerationResult {
  /** The generation's id (its sequence number, in decimal). */
  generation: string;
  seq: number;
  /** Hex SHA-256 of the generation's logical section: with `seq`, the anchor to keep for rollback checks. */
  digest: string;
  pagesWritten: number;
  /** Pack and manifest bytes written. */
  bytesWritten: number;
  pageCount: number;
  /** The snapshot's salt (its first 16 bytes). */
  salt: Uint8Array;
  full: boolean;
  /** Retention and garbage collection after the commit (their failures are warnings: the generation stands). */
  cleanup: CleanupResult;
  /** What the backup found wrong with the store and worked around. */
  warnings: string[];
  /** With `skipUnchanged`: the parent (`generation`) already held this snapshot, and nothing was written. */
  unchanged?: boolean;
}

/**
 * A snapshot read through the caller's own means, e.g. `Database.readRaw` of
 * the snapshot copy it has open: one reused buffer instead of a new one per
 * read (FileStore.read allocates each chunk, which is garbage at 500 MB).
 */
export interface SnapshotSource {
  size: number;
  /** Fills `into` with the bytes at `offset`; returns how many. */
  read(offset: number, into: Uint8Array): number | Promise<number>;
}

/**
 * Backs up a snapshot copy (a materialized copy: see snapshot.ts), given by
 * its path in `store` or as a SnapshotSource, into the page store at `dir`.
 * `key` is the database's 32-byte raw key, or its derivation still under
 * way: the first pass over the snapshot needs none. Callers hold the store's
 * lock: one writer at a time.
 */
export async function backupGeneration(
  store: FileStore, dir: string, snapshot: string | SnapshotSource, key: Uint8Array | Promise<Uint8Array>, settings: CipherSettings, options: BackupGenerationOptions,
): Promise<GenerationResult> {
  if (typeof snapshot !== 'string') return generationFrom(store, dir, snapshot, key, settings, options);
  const info = await store.stat(snapshot);
  if (!info) throw new DatabaseNotFoundError(`snapshot not found: ${snapshot}`);
  // Opened once: the second pass reads a thousand runs of changed pages.
  const reader = await openReader(store, snapshot);
  try {
    return await generationFrom(store, dir, { size: info.size, read: reader.read }, key, settings, options);
  } finally {
    await reader.close();
  }
}

async function generationFrom(
  store: FileStore, dir: string, source: SnapshotSource, key: Uint8Array | Promise<Uint8Array>, settings: CipherSettings, options: BackupGenerationOptions,
): Promise<GenerationResult> {
  const s = resolveSettings(settings);
  // A generation records a file by its salt and page 1 as they are in the file: a plaintext header holds neither.
  if (s.plaintextHeaderSize > 0) throw new InvalidArgumentError('incremental backups do not support files with a plaintext header (cipher_plaintext_header_size): use whole-file backups');
  const packBytes = options.packBytes ?? DEFAULT_PACK_BYTES;
  if (!Number.isInteger(packBytes) || packBytes < s.pageSize) throw new InvalidArgumentError('packBytes must be an integer of at least one page');
  if (options.retention) validateRetention(options.retention);
  const repackEvery = options.repackEvery ?? DEFAULT_REPACK_EVERY;
  if (!Number.isSafeInteger(repackEvery) || repackEvery < 1) throw new InvalidArgumentError('repackEvery must be a whole number of at least 1');
  if (!(options.now instanceof Date) || Number.isNaN(options.now.getTime())) throw new InvalidArgumentError('now must be a valid Date');
  const holding = holdingOf(options.lock);

  const info = { size: source.size };
  if (info.size === 0 || info.size % s.pageSize !== 0) {
    throw new CorruptDatabaseError(`snapshot of ${info.size} bytes is not a whole number of ${s.pageSize}-byte pages`);
  }
  const pageCount = info.size / s.pageSize;
  const hmacOffset = hmacOffsetOf(s);
  // Pass 1 needs no key, so it runs while the caller's key is still being derived: every page's fingerprint, and the
  // salt. A key that fails (a database the caller then copies instead) ends it at once.
  const keyed = Promise.resolve(key);
  let keyFailed: { error: unknown } | null = null;
  keyed.catch((error: unknown) => void (keyFailed = { error }));
  const fingerprints = new Uint8Array(pageCount * FINGERPRINT_BYTES);
  /** A buffer of whole pages, about `bytes` long (one page at least, the snapshot at most). */
  const pagesBuffer = (bytes: number) => new Uint8Array(Math.min(Math.max(1, Math.floor(bytes / s.pageSize)), pageCount) * s.pageSize);
  const buffer = pagesBuffer(CHUNK_BYTES);
  // The store is listed once the key is there (what follows the key derivation, e.g. reading page 1's header, would
  // otherwise queue behind the listing's hundreds of calls in the host's I/O threads), while pass 1 may still run.
  await store.ensureDir(dir);
  const scanning = keyed.then(() => scanStore(store, dir));
  scanning.catch(() => {}); // awaited below, unless pass 1 fails first
  const salt = await readFingerprints(source, s.pageSize, hmacOffset, fingerprints, [pagesBuffer(SCAN_CHUNK_BYTES), pagesBuffer(SCAN_CHUNK_BYTES)], options.onProgress, () => keyFailed);
  const raw = await keyed;
  const keys = await deriveStoreKeys(raw);

  const scan = await scanning;
  await removeStaleTmps(store, scan, holding);
  const head = await findHead(store, keys, scan);
  if (head.kind === 'damaged') {
    throw new CorruptDatabaseError(`page store: the newest manifest ${head.stored.name} is damaged (${head.detail}); verify the store, and delete that file to go on from the generation before it`);
  }
  const headSeq = head.kind === 'ok' ? head.stored.seq : 0;
  const anchor = await options.anchor;
  if (anchor && (headSeq < anchor.seq || (headSeq === anchor.seq && anchor.digest && head.kind === 'ok' && toHex(head.manifest.digest) !== anchor.digest))) {
    throw new CorruptDatabaseError(`page store rolled back: generation ${anchor.seq} was committed, the newest now is ${headSeq || 'none'}`);
  }

  const parent = head.kind === 'ok' ? head.manifest : null;
  const pl = parent?.body.logical;
  const full = !!options.full || !pl || !bytesEqual(pl.salt, salt) || pl.pageSize !== s.pageSize
    || pl.hmacAlgorithm !== s.hmacAlgorithm || pl.kdfAlgorithm !== s.kdfAlgorithm;
  const seq = Math.max(0, ...scan.manifests.map((m) => m.seq)) + 1;
  const verifier = await createPageVerifier(raw, salt, s, options.pageMacs);

  // Where the parent keeps each page, and which packs the new manifest names.
  const packNames: string[] = [];
  const packIndex = new Map<string, number>();
  const indexOf = (name: string) => packIndex.get(name) ?? (packIndex.set(name, packNames.push(name) - 1), packNames.length - 1);
  const parentAt = parent && !full ? locate(parent.header.packs, parent.body.runs, parent.body.logical.pageCount) : null;
  // A parent's page is only reused where its pack is still there and long enough; otherwise it is written again (the store heals).
  const sizes = new Map(scan.packs.map((p) => [p.name, p.size]));
  const packSize = Float64Array.from(parentAt?.names ?? [], (n) => sizes.get(n) ?? -1);
  let healed = 0;
  const locPack = new Uint32Array(pageCount);
  const locSlot = new Uint32Array(pageCount);
  const packs = new PackWriter(store, dir, holding.token, s.pageSize, packBytes);
  const placed = (pgno: number, pack: string, slot: number) => {
    locPack[pgno - 1] = indexOf(pack);
    locSlot[pgno - 1] = slot;
  };

  let newPages = 0;
  let discardable = true;
  const pause = yielder();
  try {
    // The new manifest's index of each parent pack, looked up once per pack rather than once per page.
    const reusedAs = new Int32Array(parentAt?.names.length ?? 0).fill(-1);
    const reused = (pack: number) => (reusedAs[pack]! >= 0 ? reusedAs[pack]! : (reusedAs[pack] = indexOf(parentAt!.names[pack]!)));
    const fresh = new Uint8Array(pageCount);
    let freshBytes = 0;
    const ours = words(fingerprints);
    const theirs = parentAt ? words(pl!.fingerprints) : ours;
    for (let pgno = 1; pgno <= pageCount; pgno++) {
      const w = (pgno - 1) * (FINGERPRINT_BYTES / 4);
      const same = !!parentAt && pgno <= pl!.pageCount
        && ours[w] === theirs[w] && ours[w + 1] === theirs[w + 1] && ours[w + 2] === theirs[w + 2] && ours[w + 3] === theirs[w + 3];
      if (same && packSize[parentAt!.pack[pgno - 1]!]! >= (parentAt!.slot[pgno - 1]! + 1) * s.pageSize) {
        locPack[pgno - 1] = reused(parentAt!.pack[pgno - 1]!);
        locSlot[pgno - 1] = parentAt!.slot[pgno - 1]!;
      } else {
        if (same) healed++;
        fresh[pgno - 1] = 1;
        freshBytes += s.pageSize;
      }
    }
    // Pass 2: pages whose fingerprint the parent does not have (or whose pack is gone) are read again, in runs, checked
    // at their page number and packed. Each must still be what pass 1 saw: a live file (readAtRest) may have moved on.
    const bufferPages = buffer.length / s.pageSize;
    let checked = 0;
    for (let pgno = 1; pgno <= pageCount; ) {
      if (!fresh[pgno - 1]) {
        pgno++;
        continue;
      }
      let count = 1;
      while (count < bufferPages && pgno + count <= pageCount && fresh[pgno + count - 1]) count++;
      const run = buffer.subarray(0, count * s.pageSize);
      if ((await source.read((pgno - 1) * s.pageSize, run)) !== run.length) throw new CorruptDatabaseError(`snapshot ended early, within pages ${pgno}…${pgno + count - 1}`);
      for (let i = 0; i < count; i++) {
        const page = run.subarray(i * s.pageSize, (i + 1) * s.pageSize);
        if (!sameAt(page, fingerprints, hmacOffset, FINGERPRINT_BYTES, (pgno + i - 1) * FINGERPRINT_BYTES)) {
          throw new SnapshotChangedError(`page ${pgno + i} changed while the snapshot was read`);
        }
        if (!verifier.check(page, pgno + i)) {
          if (pgno + i === 1) throw new WrongKeyError('the snapshot does not open with this key (page 1 failed its HMAC check)');
          throw new CorruptDatabaseError(`snapshot page ${pgno + i} failed its HMAC check`);
        }
      }
      await packs.add(run, pgno, placed);
      newPages += count;
      pgno += count;
      // Progress and a turn for the event loop every 4 MiB, not every run: a run is often one page.
      if (Math.floor((checked + run.length) / CHUNK_BYTES) > Math.floor(checked / CHUNK_BYTES)) {
        await options.onProgress?.({ phase: 'verify', bytesDone: checked + run.length, bytesTotal: freshBytes });
        await pause.next();
      }
      checked += run.length;
    }
    if (checked % CHUNK_BYTES) await options.onProgress?.({ phase: 'verify', bytesDone: checked, bytesTotal: freshBytes });
    await packs.finish();
    await options.beforeCommit?.();
    if (options.skipUnchanged && !full && newPages === 0 && pageCount === pl!.pageCount) {
      return {
        generation: String(pl!.seq), seq: pl!.seq, digest: toHex(parent!.digest), pagesWritten: 0, bytesWritten: 0, pageCount, salt, full: false,
        cleanup: { deleted: [], packsDeleted: 0, bytesFreed: 0, repack: { packs: 0, pagesMoved: 0, manifestsRewritten: 0 }, warnings: [] }, warnings: [], unchanged: true,
      };
    }

    const logical: Logical = {
      seq, createdAtMs: options.now.getTime(), parentSeq: parent ? parent.body.logical.seq : 0,
      parentDigest: parent ? parent.digest : new Uint8Array(32), salt, pageSize: s.pageSize,
      hmacAlgorithm: s.hmacAlgorithm, kdfAlgorithm: s.kdfAlgorithm, journalMode: options.journalMode ?? 'delete',
      full, newPages, pageCount, fingerprints,
    };
    const logicalBytes = encodeLogical(logical);
    const digest = await generationDigest(logicalBytes);
    const retained = retainedAfter(parent, { seq, createdAtMs: logical.createdAtMs, digest }, options);
    const lookForRepack = seq % repackEvery === 0 && everDeleted(retained, seq);
    await options.onProgress?.({ phase: 'commit', bytesDone: info.size, bytesTotal: info.size });
    // From here the packs stay even if this fails: the manifest naming them may be in place (renamed, its directory
    // not synced), and the next run's collection deletes them if it is not.
    discardable = false;
    const written = await writeManifest(store, dir, keys, holding, packNames, { logical, runs: toRuns(locPack, locSlot, pageCount), retained }, false, { digest, bytes: logicalBytes });
    // The store as listed before pass 1 (the lock kept every other writer out), with what this generation added.
    const name = manifestName(seq);
    const listed: Scan = {
      manifests: [{ seq, name, path: store.join(dir, name), size: written.bytes, header: written.manifest.header }, ...scan.manifests],
      tmps: scan.tmps,
      packs: [...scan.packs, ...packs.written.map((p) => ({ name: p.name, path: store.join(dir, p.name), size: p.bytes, token: holding.token }))],
    };
    const cleanup = await cleanupStore(store, dir, raw, keys, holding, {
      scan: listed,
      purgeOtherKeys: !!options.purgeOtherKeys, repackBelow: lookForRepack ? options.repackBelow : 0, repackAlways: lookForRepack,
      repackMaxBytes: options.repackMaxBytes, packBytes, onProgress: options.onProgress, head: written.manifest,
    });
    return {
      generation: String(seq), seq, digest: toHex(digest), pagesWritten: newPages, bytesWritten: packs.bytesWritten + written.bytes,
      pageCount, salt, full, cleanup,
      warnings: healed ? [`${healed} unchanged pages were written again: the packs that held them are missing or cut short (see verify)`] : [],
    };
  } catch (e) {
    // Before the manifest write nothing names these packs (a crash leaves them to the next run's collection).
    if (discardable) await packs.discard();
    throw e;
  } finally {
    pause.close();
  }
}

/** A fingerprint array as 32-bit words (four a fingerprint), to compare a page's in four steps instead of sixteen. */
function words(bytes: Uint8Array): Uint32Array {
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.length / 4);
}

/** Whether `a` at `at` and `b` at `bAt` (default: `at`) hold the same `length` bytes, without a view of either. */
function sameAt(a: Uint8Array, b: Uint8Array, at: number, length: number, bAt = at): boolean {
  for (let k = 0; k < length; k++) if (a[at + k] !== b[bAt + k]) return false;
  return true;
}

/**
 * Pass 1: reads the snapshot whole, through two buffers (a host that reads
 * in the background reads the next chunk while this one's fingerprints are
 * taken), and keeps every page's fingerprint; returns its salt. Only bytes
 * are copied (no key needed): it runs while the key is derived. Progress
 * every 4 MiB.
 */
async function readFingerprints(
  source: SnapshotSource, pageSize: number, hmacOffset: number, fingerprints: Uint8Array, buffers: [Uint8Array, Uint8Array], onProgress: OnPageStoreProgress | undefined,
  stop: () => { error: unknown } | null,
): Promise<Uint8Array> {
  const salt = new Uint8Array(SALT_BYTES);
  const fingerprintWords = new Uint32Array(fingerprints.buffer, fingerprints.byteOffset, fingerprints.length / 4);
  const step = buffers[0].length;
  const readAt = (offset: number, buffer: Uint8Array) => {
    const chunk = buffer.subarray(0, Math.min(step, source.size - offset));
    const read = (async () => {
      if ((await source.read(offset, chunk)) !== chunk.length) throw new CorruptDatabaseError(`snapshot ended early, within bytes ${offset}…${offset + chunk.length}`);
      return chunk;
    })();
    read.catch(() => {}); // awaited by the next turn, or in `finally`: failing meanwhile is not an unhandled rejection
    return read;
  };
  const pause = yielder();
  let next: Promise<Uint8Array> | null = null;
  try {
    next = readAt(0, buffers[0]);
    for (let offset = 0, i = 0; offset < source.size; offset += step, i ^= 1) {
      const chunk = await next!;
      const stopped = stop();
      if (stopped) throw stopped.error;
      next = offset + step < source.size ? readAt(offset + step, buffers[i ^ 1]!) : null;
      if (offset === 0) salt.set(chunk.subarray(0, SALT_BYTES));
      // Word by word (the buffers, fingerprints and HMAC offsets are 4-aligned): a view per page (128 000 of them in
      // 500 MB) cost more than the copy.
      const chunkWords = new Uint32Array(chunk.buffer, chunk.byteOffset, chunk.length >>> 2);
      for (let at = hmacOffset >>> 2, fp = (offset / pageSize) * (FINGERPRINT_BYTES / 4); at < chunkWords.length; at += pageSize >>> 2) {
        for (let k = 0; k < FINGERPRINT_BYTES / 4; k++) fingerprintWords[fp++] = chunkWords[at + k]!;
      }
      const done = offset + chunk.length;
      if (done === source.size || Math.floor(done / CHUNK_BYTES) > Math.floor(offset / CHUNK_BYTES)) await onProgress?.({ phase: 'scan', bytesDone: done, bytesTotal: source.size });
      await pause.next();
    }
    return salt;
  } finally {
    // A read still under way (pass 1 stopped early) must end before its buffer is reused or the file closed.
    await next?.catch(() => {});
    pause.close();
  }
}

/**
 * Whether a generation before `seq` is gone (the kept ones do not run from 1
 * to it), now or earlier: only then can a pack have lost live pages. A
 * backup that looks for packs to repack looks then even if it deleted
 * nothing itself (with daily and weekly retention, the generations that
 * delete need not be the ones whose number is a multiple of repackEvery).
 */
function everDeleted(retained: RetainedEntry[], seq: number): boolean {
  return retained.length < seq;
}

/**
 * The generations the store holds once this one commits: the parent's list
 * (a generation it lists that has gone missing stays listed, so the loss
 * keeps being reported) plus this one, less what retention drops.
 */
function retainedAfter(parent: OpenedManifest | null, self: RetainedEntry, options: BackupGenerationOptions): RetainedEntry[] {
  const all = [self, ...(parent?.body.retained ?? [])];
  const keep = options.retention ? planRetention(all, options.retention, options.now) : new Set(all.map((e) => e.seq));
  return all.filter((e) => keep.has(e.seq));
}
