/**
 * A consistent copy of a database that another process may be writing,
 * taken without writing a byte to it and without its cooperation.
 *
 * Node and Deno have no fcntl locks and our WAL index lives in one process's
 * memory, so nothing we do with the live files is visible to their owner:
 * opening them through SQLite could roll back its "hot" journal, checkpoint
 * its WAL or delete its `-wal` under it. So the live files are only read.
 *
 * - WAL mode: the main file is copied, then the `-wal`. A checkpoint can only
 *   write pages into the main file that are already in the WAL, so replaying
 *   the copied WAL's committed frames over the copied main file gives the
 *   state at the last commit in the copied WAL — provided the WAL was not
 *   restarted in between, which changes its header (salts, checkpoint
 *   sequence): that is checked before the main copy, in the copy, and after.
 * - Rollback journal: the main file is copied, then a live journal if there
 *   is one. A writer journals (and syncs) a page's original before changing
 *   it in the main file, so rolling the copied journal back over the copied
 *   main file gives the state before that transaction — provided it is the
 *   same transaction throughout (the journal header's nonce) and no other
 *   transaction committed during the copy: a commit rewrites page 1 (its
 *   change counter; an encrypted page rewritten gets a fresh IV, so its
 *   bytes change), except in exclusive locking mode after the first one; and
 *   it changes the file's modification time, which is compared too. Where a
 *   `-journal` is kept between transactions (as exclusive locking mode
 *   keeps one), the look is trusted only once the file was last modified
 *   longer ago than a timestamp's grain, so that a write after the look
 *   cannot carry the same time.
 *
 * Each look reads the side files before and after the main file (observe).
 * A host with no modification times leaves page 1 as the only witness.
 *
 * Not covered, as without locks it cannot be: journal_mode MEMORY or OFF,
 * where a transaction still open may have written pages to the main file
 * with no journal on disk to say so (and, in exclusive locking mode, later
 * commits leave no journal and page 1 as it was: only the modification
 * time tells them).
 *
 * The replay and the rollback are SQLite's own, run on the copy by opening it
 * (see `materialize`). When the checks fail the copy is thrown away and taken
 * again, a bounded number of times; then BusyError.
 */
import { BusyError } from '../engine/errors.ts';
import type { Database, JournalMode } from '../engine/database.ts';
import type { FileStore } from '../files/file-store.ts';

/** How long to keep retrying a snapshot that a writer keeps disturbing (default). */
export const SNAPSHOT_TIMEOUT_MS = 30_000;

const WAL_HEADER_BYTES = 32;
const JOURNAL_HEADER_BYTES = 28;
const JOURNAL_MAGIC = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
/** Enough of page 1 to see it rewritten (a fresh IV changes every byte after the salt). */
const PAGE1_PROBE_BYTES = 512;

interface Observation {
  mainSize: number;
  /** The main file's modification time, and when it was looked at (ms since the epoch). */
  mtimeMs: number;
  at: number;
  page1: Uint8Array;
  /** The WAL header, or null when there is no WAL with a header. */
  wal: Uint8Array | null;
  /** The identity of a live journal (magic, nonce, sizes: not its record count), or null. */
  journal: Uint8Array | null;
  /** Whether a `-journal` exists at all, live or not (kept between transactions: PERSIST, TRUNCATE, exclusive locking mode). */
  journalFile: boolean;
  /** The side files read the same before and after the main file (see observe). */
  steady: boolean;
}

export interface SnapshotOptions {
  /** Give up with BusyError after this long (default 30 s). */
  timeoutMs?: number;
  /** Called after the main file is copied. */
  onCopied?: (bytes: number) => void | Promise<void>;
  /** Holds writers of this process off while a copy is taken (see BackupHost.readLock). */
  readLock?: (timeoutMs: number) => Promise<() => void>;
  /** The bytes the database holds by its header (header.ts), when known: a file padded past them is copied only that far. */
  databaseBytes?: () => Promise<number | null>;
}

export interface Snapshot {
  /** The copied WAL or journal beside `target`, to be applied by `materialize`. */
  pending: 'wal' | 'journal' | null;
  /** Attempts it took (1 when nothing disturbed the copy). */
  attempts: number;
  /** Resolves once the copy of the main file is on disk (the host may still be writing it back). */
  durable: Promise<void>;
}

/**
 * Copies `source` (and its WAL or live journal) to `target` (and
 * `target-wal` / `target-journal`) until the copies are known consistent.
 * Reads the source only. `target` must not exist.
 */
export async function copySnapshot(files: FileStore, source: string, target: string, options: SnapshotOptions = {}): Promise<Snapshot> {
  const deadline = Date.now() + (options.timeoutMs ?? SNAPSHOT_TIMEOUT_MS);
  for (let attempt = 1, delay = 2; ; attempt++, delay = Math.min(delay * 2, 100)) {
    await untilTrusted(files, source, deadline); // not under the read lock: this process's writers go on meanwhile
    const unlock = await options.readLock?.(Math.max(0, deadline - Date.now()));
    let before: Observation | null = null, after: Observation | null = null, copied = false, pending: Snapshot['pending'] = null;
    let durable: Promise<void> = Promise.resolve();
    try {
      const look = await observe(files, source);
      // Not trusted (a writer came since the wait): nothing is copied; look again.
      if (look.wal || look.journal || trusted(look)) {
        before = look;
        const held = (await options.databaseBytes?.()) ?? before.mainSize;
        ({ durable } = await copyPrefix(files, source, target, Math.min(held, before.mainSize), before.mainSize));
        durable.catch(() => {}); // awaited by the caller of a copy that is kept
        pending = before.wal ? 'wal' : before.journal ? 'journal' : null;
        // A side file that vanished between the look and the copy means a writer moved on: take it again.
        copied = pending === null || (await copySide(files, `${source}-${pending}`, `${target}-${pending}`));
        after = await observe(files, source);
      }
    } finally {
      unlock?.();
    }
    const consistent = before !== null && after !== null && copied && after.steady && (
      pending === 'wal' ? same(before.wal, after.wal) && same(before.wal, await files.read(`${target}-wal`, 0, WAL_HEADER_BYTES))
      : after.wal === null && same(before.journal, after.journal) && (pending === 'journal'
        ? same(before.journal, journalIdentity(await files.read(`${target}-journal`, 0, JOURNAL_HEADER_BYTES)))
        : sameMain(before, after)));
    if (before && consistent) {
      await options.onCopied?.(before.mainSize);
      return { pending, attempts: attempt, durable };
    }
    await discard(files, target);
    if (Date.now() + delay > deadline) {
      throw new BusyError(`another process kept writing ${files.basename(source)}: no consistent copy after ${attempt} attempts in ${options.timeoutMs ?? SNAPSHOT_TIMEOUT_MS} ms`);
    }
    await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
  }
}

/** The live file was written while it was read in place (or a snapshot read twice differed). */
export class SnapshotChangedError extends BusyError {}

/** Thrown by readAtRest's `read` when what it found needs a copy taken after all (e.g. page 1 says WAL mode). */
export class NotAtRestError extends Error {}

/**
 * For a database at rest (no WAL with a header, no live journal, last
 * modified longer ago than its timestamps' grain — waited for a moment, as
 * in exclusive locking mode page 1 does not tell commits apart): runs `read`
 * on the live file itself, without a copy, and returns its answer. `read`
 * must call `unchanged()` once it has read all it needs and before it keeps
 * anything: that looks again, as copySnapshot does after its copy, and
 * throws SnapshotChangedError when a writer came.
 * Resolves null — take a copy instead (copySnapshot, whose window is shorter
 * and which retries) — when the database is not at rest, when a writer came,
 * or when `read` throws NotAtRestError. Any other error from before that
 * look (a page that failed its check, a read the host refused) counts only
 * when nothing wrote to the file meanwhile.
 */
export async function readAtRest<T>(
  files: FileStore, source: string, read: (size: number, unchanged: () => Promise<void>) => Promise<T>,
  options: Pick<SnapshotOptions, 'timeoutMs' | 'readLock'> = {},
): Promise<T | null> {
  // Read in place only once settled, journal or not (exclusive locking mode with journal_mode MEMORY keeps no
  // -journal and does not rewrite page 1): a file written just now is waited for a moment, then copied instead.
  await untilTrusted(files, source, Date.now() + SETTLE_WAIT_MS, settled);
  let unlock = await options.readLock?.(options.timeoutMs ?? SNAPSHOT_TIMEOUT_MS);
  let looked = false;
  try {
    const before = await observe(files, source);
    if (before.wal || before.journal || !before.steady || !settled(before)) return null;
    const unchanged = async () => {
      looked = true;
      const after = await observe(files, source);
      // The last look lets this process's writers go on.
      unlock?.();
      unlock = undefined;
      if (after.wal || after.journal || !after.steady || !sameMain(before, after)) throw new SnapshotChangedError(`${files.basename(source)} was written while it was read`);
    };
    try {
      return await read(before.mainSize, unchanged);
    } catch (e) {
      if (e instanceof NotAtRestError || e instanceof SnapshotChangedError) return null;
      // A failed page check, or a read the host refused (OPFS: a File read after a write), may be a writer's doing.
      if (!looked) {
        const disturbed = await unchanged().then(() => false, (c: unknown) => {
          if (c instanceof SnapshotChangedError) return true;
          throw c;
        });
        if (disturbed) return null;
      }
      throw e;
    }
  } finally {
    unlock?.();
  }
}

/**
 * Applies the copied WAL or journal to the copy through SQLite, on the copy
 * only (recovery and a checkpoint for a WAL, rollback for a journal), and
 * leaves the copy a rollback-journal file: one that opens read-only anywhere,
 * with no `-wal` or `-shm` to create (read-only media, native readers).
 * `db` is the copy opened read-write; the caller closes it. Returns the
 * journal mode the database had, for whoever puts the copy back in its place.
 */
export async function materialize(db: Database, pending: Snapshot['pending']): Promise<JournalMode> {
  // Any read makes SQLite recover the WAL or roll back the hot journal.
  await db.query('SELECT count(*) FROM sqlite_schema');
  const [{ journal_mode: mode } = { journal_mode: 'delete' }] = await db.query<{ journal_mode: string }>('PRAGMA journal_mode');
  if (pending === 'wal') await db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  if (String(mode).toLowerCase() !== 'wal') return 'delete';
  await db.exec('PRAGMA journal_mode = DELETE');
  return 'wal';
}

/** Removes a snapshot copy and whatever was copied beside it. */
export async function discard(files: FileStore, target: string): Promise<void> {
  for (const p of [target, ...SIDE_FILES.map((s) => `${target}${s}`)]) await files.remove(p).catch(() => false);
}

export const SIDE_FILES = ['-wal', '-journal', '-shm'] as const;

/**
 * One look at the database. The side files are read before the main file
 * and again after it, and must agree (`steady`): a transaction that was
 * writing the main file when page 1 was read then shows in the second read
 * of its journal, and a commit done before the first read has rewritten the
 * page 1 read after it — whatever order the host's reads would finish in.
 */
async function observe(files: FileStore, source: string): Promise<Observation> {
  const sides = () => Promise.all([readIfExists(files, `${source}-wal`, WAL_HEADER_BYTES), readIfExists(files, `${source}-journal`, JOURNAL_HEADER_BYTES)]);
  const first = await sides();
  const at = Date.now();
  const [main, page1] = await Promise.all([files.stat(source), readIfExists(files, source, PAGE1_PROBE_BYTES)]);
  const [wal, journal] = await sides();
  return {
    mainSize: main?.size ?? 0,
    mtimeMs: main?.mtimeMs ?? 0,
    at,
    page1: page1 ?? new Uint8Array(0),
    wal: wal?.length === WAL_HEADER_BYTES ? wal : null,
    journal: journalIdentity(journal ?? new Uint8Array(0)),
    journalFile: journal !== null,
    steady: same(first[0], wal) && same(first[1], journal),
  };
}

/**
 * The first bytes of a file, or null when it does not exist. Any other
 * failure (permissions) is thrown: a WAL we cannot read is not an absent one.
 */
async function readIfExists(files: FileStore, path: string, length: number): Promise<Uint8Array | null> {
  if (!(await files.stat(path))) return null;
  try {
    return await files.read(path, 0, length);
  } catch (e) {
    if (notFound(e) || !(await files.stat(path))) return null;
    throw e;
  }
}

async function copySide(files: FileStore, from: string, to: string): Promise<boolean> {
  const size = (await files.stat(from))?.size;
  if (size === undefined) return false;
  try {
    await (await copyPrefix(files, from, to, size, size)).durable;
    return true;
  } catch (e) {
    if (notFound(e) || !(await files.stat(from))) return false;
    throw e;
  }
}

/** A file that vanished: Node's ENOENT, OPFS's NotFoundError. (It may be back already: a new transaction.) */
function notFound(e: unknown): boolean {
  return (e as { code?: unknown })?.code === 'ENOENT' || (e as { name?: unknown })?.name === 'NotFoundError';
}

/**
 * A journal whose header carries the magic has been synced, so the main file
 * may hold that transaction's changes: it is live (or hot). Until then SQLite
 * keeps the magic zeroed, and after a commit in PERSIST mode it zeroes the
 * header: in both cases the main file is not being changed by it.
 */
function journalIdentity(header: Uint8Array): Uint8Array | null {
  if (header.length < JOURNAL_HEADER_BYTES || !JOURNAL_MAGIC.every((b, i) => header[i] === b)) return null;
  const id = header.slice();
  id.fill(0, 8, 12); // the record count grows within one transaction
  return id;
}

/**
 * The main file as it was: same size, same page 1, not modified. Page 1 alone
 * does not tell: in exclusive locking mode SQLite rewrites it (its change
 * counter) only on the first commit, and later commits write only the pages
 * they change. The modification time does.
 */
function sameMain(before: Observation, after: Observation): boolean {
  return after.mainSize === before.mainSize && after.mtimeMs === before.mtimeMs && same(before.page1, after.page1);
}

/**
 * Whether a look can tell every later commit by page 1 or the modification
 * time. With no `-journal` between transactions (DELETE mode), each commit
 * makes one and rewrites page 1. With one kept (PERSIST, TRUNCATE, or
 * exclusive locking mode, which rewrites page 1 only on its first commit),
 * only the modification time tells, and only once the file has settled.
 */
function trusted(o: Observation): boolean {
  // A host with no modification times (0) leaves page 1 as the only witness, as it was before times were compared.
  return o.steady && (!o.journalFile || !hasTime(o) || settled(o));
}

const hasTime = (o: Observation) => Number.isFinite(o.mtimeMs) && o.mtimeMs > 0;

/**
 * Whether the file was last modified long enough before it was looked at
 * that a write after the look cannot carry the same modification time.
 * Timestamps are as coarse as the kernel's clock tick (a few ms), or whole
 * seconds on some file systems (a time on a whole second suggests one). A
 * time in the future (a skewed clock) tells nothing either way.
 */
function settled(o: Observation): boolean {
  // No usable time (a host without one, or 0): never settled, so never read in place.
  if (!hasTime(o)) return false;
  return o.at - o.mtimeMs > grainOf(o) || o.mtimeMs - o.at > FUTURE_MS;
}

/** 20 ms covers a kernel clock tick (1–10 ms); a time on a whole second suggests a file system that keeps only seconds. */
const grainOf = (o: Observation) => (o.mtimeMs % 1000 === 0 ? 2000 : 20);
/** A modification time this far ahead of the clock (a skewed server) is taken as settled: waiting would never end. */
const FUTURE_MS = 60_000;
/** How long readAtRest waits for a file written just now before it leaves it to a copy. */
const SETTLE_WAIT_MS = 100;

/** Waits, up to `deadline`, until a look passes `ok` (default: trusted); not for a WAL or live journal, nor without times. */
async function untilTrusted(files: FileStore, source: string, deadline: number, ok: (o: Observation) => boolean = trusted): Promise<void> {
  for (;;) {
    const o = await observe(files, source);
    if (o.wal || o.journal || (o.steady && ok(o)) || !hasTime(o) || Date.now() >= deadline) return;
    await new Promise((r) => setTimeout(r, Math.max(1, Math.min(grainOf(o) - (o.at - o.mtimeMs) + 1, deadline - Date.now()))));
  }
}

function same(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The first `length` of the `size` bytes of `from`: by the host's kernel copy when that is the whole file. */
async function copyPrefix(files: FileStore, from: string, to: string, length: number, size: number): Promise<{ durable: Promise<void> }> {
  if (files.copyPrefix && length === size) return { durable: (await files.copyPrefix(from, to, length))?.durable ?? Promise.resolve() };
  const writer = await files.create(to);
  try {
    for (let done = 0; done < length; ) {
      const chunk = await files.read(from, done, Math.min(4 << 20, length - done));
      if (chunk.length === 0) break;
      await writer.write(chunk);
      done += chunk.length;
    }
    await writer.close();
  } catch (e) {
    await writer.abort();
    throw e;
  }
  return { durable: Promise.resolve() };
}
