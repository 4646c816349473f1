/**
 * The virtual-file adapter: the only way the backup service touches storage.
 * Small on purpose — a new host (OPFS, a cloud bucket, ...) implements these
 * methods and gets the whole backup service. Paths are host strings joined
 * with `join`; the service never parses them beyond that.
 */
import { randomHex } from '../engine/bytes.ts';

export interface FileInfo {
  /** Last path segment. */
  name: string;
  size: number;
  /** Last modification, ms since the epoch. */
  mtimeMs: number;
  /** Bytes the file takes on disk, where the host can tell: less than `size` for a sparse file. */
  allocated?: number;
}

/** Sequential writer for one new file. `close()` makes the bytes durable (fsync where the host has it). */
export interface FileWriter {
  /** Appends `chunk`; the caller may reuse its buffer once the promise resolves. */
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
  /** Gives up: closes and deletes the partial file. Safe after a failed write. */
  abort(): Promise<void>;
}

/** One file opened for many reads (see FileStore.openReader). */
export interface FileReader {
  /** As FileStore.readInto, on this file. */
  read(offset: number, into: Uint8Array): Promise<number>;
  close(): Promise<void>;
}

/** Releases a lock taken with `FileStore.lock`. */
export type Release = () => Promise<void>;

/** A lock taken with `FileStore.lock`, held until `release()`. */
export interface HeldLock {
  /** Names this holding (letters, digits, '-'): the holder's temporary files carry it. */
  readonly token: string;
  /**
   * Throws LockLostError when another process has taken the lock over (this
   * one was paused past the stale window). Called before every step that
   * changes what others see.
   */
  check(): Promise<void>;
  /** Whether the holding named `token` may still be at work, so its temporary files must stay. */
  mayBeAlive(token: string): Promise<boolean>;
  release(): Promise<void>;
}

/**
 * A lock for hosts whose platform lets go of a dead holder's lock by itself
 * (Web Locks, one realm's mutex): no takeover, so every other holding is over.
 */
export function platformLock(release: Release): HeldLock {
  const token = randomHex(6);
  return { token, check: async () => {}, mayBeAlive: async (t) => t === token, release };
}

export interface FileStore {
  join(dir: string, name: string): string;
  dirname(path: string): string;
  basename(path: string): string;
  /**
   * Regular files directly in `dir` whose names start with `prefix` (empty
   * when `dir` is missing). Links, directories and entries that cannot be
   * looked at (a link loop) are skipped, and reported to `onSkip`.
   */
  list(dir: string, prefix: string, onSkip?: (name: string, why: string) => void): Promise<FileInfo[]>;
  /** null when nothing exists at `path`. */
  stat(path: string): Promise<FileInfo | null>;
  /** Reads up to `length` bytes at `offset` (fewer at end of file). */
  read(path: string, offset: number, length: number): Promise<Uint8Array>;
  /**
   * Fills `into` (a view the caller keeps and reuses) with the bytes at
   * `offset`; resolves with how many (fewer at end of file), touching nothing
   * past them and never detaching `into`'s buffer. No allocation per read:
   * a restore reads hundreds of MB, and new buffers pile up as garbage.
   * Optional for other hosts (see `readInto` below, which falls back to read);
   * the memory, filesystem and OPFS stores have it.
   */
  readInto?(path: string, offset: number, into: Uint8Array): Promise<number>;
  /**
   * Optional: `path` opened once for many reads. A page store reads a live
   * database run of pages by run of pages, a thousand reads for a 1% change
   * to 500 MB: opening the file for each cost more than reading it.
   */
  openReader?(path: string): Promise<FileReader>;
  /** Creates a new file for writing; fails if it exists. New files are owner-only. */
  create(path: string): Promise<FileWriter>;
  /** Replaces `to` with `from` in one step where the host allows (POSIX rename). */
  rename(from: string, to: string): Promise<void>;
  /** Deletes a file; false when it was already gone. */
  remove(path: string): Promise<boolean>;
  /** Creates the directory (and parents) if needed, owner-only; true when this call created it. */
  ensureDir(path: string): Promise<boolean>;
  /**
   * Optional: throws UnsafeDirectoryError when others could replace or
   * delete files in `dir` (writable by others, no sticky bit).
   */
  refuseShared?(dir: string): Promise<void>;
  /** Optional: gives `to` the owner, group and mode of `from` (a file replacing another keeps what the app set). */
  matchOwner?(from: string, to: string): Promise<void>;
  /** Bytes available to us in the volume holding `dir`. Throws when it cannot be known. */
  freeSpace(dir: string): Promise<number>;
  /** Owner-only permissions (0600 files, 0700 directories) where the host has permissions. */
  restrictToOwner(path: string, kind: 'file' | 'dir'): Promise<void>;
  /**
   * An exclusive lock named by `path`, held across every process or tab that
   * shares this storage. Waits up to `timeoutMs`; rejects with LockTimeoutError.
   * `staleMs`: where a host must judge a silent holder dead (lock files), after how long.
   */
  lock(path: string, timeoutMs: number, staleMs?: number): Promise<HeldLock>;
  /**
   * Optional: why another connection or process may have the database at
   * `path` open (a reason for people), or null when nothing does. Hosts that
   * cannot tell leave it out.
   */
  inUse?(path: string): Promise<string | null>;
  /**
   * Optional fast path: a new file `to` holding the first `length` bytes of
   * `from`, by the host's own means (a kernel copy). Resolves once the bytes
   * are there, with `durable` when they are not on disk yet: it resolves once
   * they are (started at once, it runs on while the caller goes on), and
   * rejects, `to` removed, when they cannot be.
   */
  copyPrefix?(from: string, to: string, length: number): Promise<{ durable?: Promise<void> } | void>;
  /** Optional: cuts the file at `path` to `length` bytes, durably. */
  truncate?(path: string, length: number): Promise<void>;
}

/** `store.readInto` where the store has it; else a read copied into `into`. */
export async function readInto(store: FileStore, path: string, offset: number, into: Uint8Array): Promise<number> {
  if (store.readInto) return store.readInto(path, offset, into);
  const bytes = await store.read(path, offset, into.length);
  into.set(bytes);
  return bytes.length;
}

/** `store.openReader` where the store has it; else reads by `readInto`. */
export async function openReader(store: FileStore, path: string): Promise<FileReader> {
  if (store.openReader) return store.openReader(path);
  return { read: (offset, into) => readInto(store, path, offset, into), close: async () => {} };
}

/** Copies a whole file through a FileStore in bounded memory. */
export async function copyFile(
  store: FileStore,
  from: string,
  to: string,
  onChunk?: (done: number) => void | Promise<void>,
  chunkBytes = 4 << 20,
): Promise<number> {
  const writer = await store.create(to);
  let offset = 0;
  try {
    for (;;) {
      const chunk = await store.read(from, offset, chunkBytes);
      if (chunk.length === 0) break;
      await writer.write(chunk);
      offset += chunk.length;
      await onChunk?.(offset);
    }
    await writer.close();
    return offset;
  } catch (e) {
    await writer.abort().catch(() => {});
    throw e;
  }
}
