/**
 * The part every cipherkeep VFS shares: bookkeeping of open files, SQLite lock
 * levels and the in-memory WAL index. A host (Node/Deno filesystem, memory,
 * OPFS) only supplies byte storage through the abstract methods below.
 */
import { FacadeVFS } from '@journeyapps/wa-sqlite/src/FacadeVFS.js';
import * as VFS from '@journeyapps/wa-sqlite/src/VFS.js';
import { LockTable } from './locks.ts';
import { BusyError } from '../engine/errors.ts';
import { ShmTable, SQLITE_IOERR_SHMMAP } from './shm.ts';

/** What a host needs to tell the engine about a path before SQLite opens it. */
export interface PathInfo {
  /** Size in bytes, or null when no file exists at the path. */
  size: number | null;
  /** Whether the directory that would hold the file exists. */
  parentExists: boolean;
}

/** Storage errors a host maps to SQLite codes; anything else becomes SQLITE_IOERR_*. */
export class HostIOError extends Error {
  constructor(message: string, readonly sqliteCode: number) {
    super(message);
  }
}

interface OpenFile<H> {
  path: string;
  flags: number;
  handle: H;
}

export abstract class HostVFS<H> extends FacadeVFS {
  override mxPathname = 1024;
  protected readonly open = new Map<number, OpenFile<H>>();
  protected readonly locks = new LockTable();
  readonly #shm: ShmTable;
  #lastError = '';

  constructor(name: string, module: any) {
    super(name, module);
    this.#shm = new ShmTable(module);
  }

  // ---- storage each host implements ----
  /** Opens (creating when `create`) the file; returns null when absent and not created. */
  protected abstract openHandle(path: string | null, create: boolean, readonly: boolean): H | null;
  protected abstract closeHandle(handle: H, deleteOnClose: boolean, path: string): void;
  /** Reads into `into` at `offset`; returns the number of bytes read (short at end of file). */
  protected abstract readAt(handle: H, into: Uint8Array, offset: number): number;
  protected abstract writeAt(handle: H, data: Uint8Array, offset: number): void;
  protected abstract truncateTo(handle: H, size: number): void;
  protected abstract syncHandle(handle: H, dataOnly: boolean): void;
  protected abstract sizeOf(handle: H): number;
  /** Deletes the file; returns false when it did not exist. */
  abstract deleteFile(path: string, syncDir?: boolean): boolean;
  abstract info(path: string): PathInfo;
  /**
   * Called (and awaited) before SQLite opens `path`: hosts whose storage can
   * only be opened asynchronously (OPFS) get their handles ready here.
   * Returns whether the main file was created by this call.
   */
  async prepare(_path: string, _create: boolean): Promise<{ created: boolean }> {
    return { created: false };
  }

  /** Called when a connection opened after `prepare` is closed. */
  async release(_path: string): Promise<void> {}

  /**
   * Brackets each operation of a connection. Hosts whose cross-context locks
   * are asynchronous (OPFS: Web Locks) take them in `enter`, so SQLite's
   * synchronous lock calls find them already held.
   */
  async enter(_path: string): Promise<void> {}
  exit(_path: string): void {}

  /** Resolves a name as SQLite will see it (absolute on filesystems). */
  abstract resolve(path: string): string;
  /**
   * Reads up to `into.length` bytes at `offset` into `into`, beside SQLite
   * rather than through it (the KDF salt; encrypted pages for snapshots).
   * Returns the count (fewer at end of file), or null when the file is absent.
   */
  abstract readRange(path: string, offset: number, into: Uint8Array): number | null;

  readonly #readWatchers = new Map<string, (bytes: number) => void>();
  readonly #writeWatchers = new Map<string, (offset: number, length: number) => void>();

  #readers = 0;

  /**
   * Takes a reader's (SHARED) lock on `path` among this engine's connections,
   * waiting asynchronously: while it is held they cannot commit in rollback
   * mode. Another process never sees it. Writes nothing.
   */
  async readLock(path: string, timeoutMs: number): Promise<() => void> {
    const id = -1 - this.#readers++; // SQLite's file ids are positive
    this.locks.attach(id, this.resolve(path));
    const deadline = Date.now() + timeoutMs;
    for (let delay = 1; this.locks.lock(id, VFS.SQLITE_LOCK_SHARED) !== VFS.SQLITE_OK; delay = Math.min(delay * 2, 4)) {
      if (Date.now() > deadline) {
        this.locks.detach(id);
        throw new BusyError(`connections of this engine kept writing ${path} for ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, delay));
    }
    return () => this.locks.detach(id);
  }

  /** Whether a connection of this engine has the database at `path`, or its WAL or journal, open. */
  isOpen(path: string): boolean {
    const full = this.resolve(path);
    for (const file of this.open.values()) {
      if (file.path === full || ['-wal', '-journal'].some((s) => file.path === full + s)) return true;
    }
    return false;
  }

  /** Calls `onRead` with the size of every SQLite read of `path` until the returned function is called. */
  watchReads(path: string, onRead: (bytes: number) => void): () => void {
    const full = this.resolve(path);
    this.#readWatchers.set(full, onRead);
    return () => this.#readWatchers.delete(full);
  }

  /** Calls `onWrite` with the span of every SQLite write to `path` (a truncation: from the new size on) until the returned function is called. */
  watchWrites(path: string, onWrite: (offset: number, length: number) => void): () => void {
    const full = this.resolve(path);
    this.#writeWatchers.set(full, onWrite);
    return () => this.#writeWatchers.delete(full);
  }

  // ---- FacadeVFS methods ----
  jOpen(filename: string | null, fileId: number, flags: number, pOutFlags: DataView): number {
    return this.#guard(VFS.SQLITE_CANTOPEN, () => {
      const path = filename === null ? null : this.resolve(filename);
      const handle = this.openHandle(path, !!(flags & VFS.SQLITE_OPEN_CREATE), !!(flags & VFS.SQLITE_OPEN_READONLY));
      if (handle === null) return VFS.SQLITE_CANTOPEN;
      const name = path ?? `temp:${fileId}`;
      this.open.set(fileId, { path: name, flags, handle });
      this.locks.attach(fileId, name);
      pOutFlags.setInt32(0, flags, true);
      return VFS.SQLITE_OK;
    });
  }

  jClose(fileId: number): number {
    const file = this.open.get(fileId);
    if (!file) return VFS.SQLITE_OK;
    this.open.delete(fileId);
    this.locks.detach(fileId);
    this.#shm.unmap(fileId);
    return this.#guard(VFS.SQLITE_IOERR_CLOSE, () => {
      this.closeHandle(file.handle, !!(file.flags & VFS.SQLITE_OPEN_DELETEONCLOSE), file.path);
      return VFS.SQLITE_OK;
    });
  }

  jRead(fileId: number, pData: Uint8Array, offset: number): number {
    return this.#withFile(fileId, VFS.SQLITE_IOERR_READ, (file) => {
      const into = pData.subarray();
      const n = this.readAt(file.handle, into, offset);
      this.#readWatchers.get(file.path)?.(n);
      if (n < into.length) {
        into.fill(0, n);
        return VFS.SQLITE_IOERR_SHORT_READ;
      }
      return VFS.SQLITE_OK;
    });
  }

  jWrite(fileId: number, pData: Uint8Array, offset: number): number {
    return this.#withFile(fileId, VFS.SQLITE_IOERR_WRITE, (file) => {
      this.writeAt(file.handle, pData.subarray(), offset);
      this.#writeWatchers.get(file.path)?.(offset, pData.length);
      return VFS.SQLITE_OK;
    });
  }

  jTruncate(fileId: number, size: number): number {
    return this.#withFile(fileId, VFS.SQLITE_IOERR_TRUNCATE, (file) => {
      this.truncateTo(file.handle, size);
      this.#writeWatchers.get(file.path)?.(size, Infinity);
      return VFS.SQLITE_OK;
    });
  }

  jSync(fileId: number, flags: number): number {
    return this.#withFile(fileId, VFS.SQLITE_IOERR_FSYNC, (file) => {
      this.syncHandle(file.handle, (flags & 0x0f) === VFS.SQLITE_SYNC_DATAONLY);
      return VFS.SQLITE_OK;
    });
  }

  jFileSize(fileId: number, pSize64: DataView): number {
    return this.#withFile(fileId, VFS.SQLITE_IOERR_FSTAT, (file) => {
      pSize64.setBigInt64(0, BigInt(this.sizeOf(file.handle)), true);
      return VFS.SQLITE_OK;
    });
  }

  jDelete(filename: string, syncDir: number): number {
    return this.#guard(VFS.SQLITE_IOERR_DELETE, () =>
      this.deleteFile(this.resolve(filename), !!syncDir) ? VFS.SQLITE_OK : VFS.SQLITE_IOERR_DELETE_NOENT,
    );
  }

  jAccess(filename: string, flags: number, pResOut: DataView): number {
    return this.#guard(VFS.SQLITE_IOERR_ACCESS, () => {
      pResOut.setInt32(0, this.info(this.resolve(filename)).size === null ? 0 : 1, true);
      return VFS.SQLITE_OK;
    });
  }

  jFullPathname(filename: string, zOut: Uint8Array): number {
    const { read, written } = new TextEncoder().encodeInto(this.resolve(filename), zOut);
    if (read < filename.length || written >= zOut.length) return VFS.SQLITE_CANTOPEN;
    zOut[written] = 0;
    return VFS.SQLITE_OK;
  }

  jGetLastError(zBuf: Uint8Array): number {
    const { written } = new TextEncoder().encodeInto(this.#lastError, zBuf.subarray(0, zBuf.length - 1));
    zBuf[written] = 0;
    return VFS.SQLITE_OK;
  }

  jLock(fileId: number, level: number): number {
    return this.locks.lock(fileId, level);
  }

  jUnlock(fileId: number, level: number): number {
    return this.locks.unlock(fileId, level);
  }

  jCheckReservedLock(fileId: number, pResOut: DataView): number {
    pResOut.setInt32(0, this.locks.isReserved(fileId) ? 1 : 0, true);
    return VFS.SQLITE_OK;
  }

  // ---- WAL index: raw pointers, FacadeVFS has no j* form for these ----
  xShmMap(fileId: number, region: number, size: number, extend: number, pp: number): number {
    const file = this.open.get(fileId);
    if (!file) return SQLITE_IOERR_SHMMAP;
    return this.#shm.map(fileId, file.path, region, size, !!extend, pp);
  }

  xShmLock(fileId: number, offset: number, n: number, flags: number): number {
    return this.#shm.lock(fileId, offset, n, flags);
  }

  xShmBarrier(_fileId: number): number {
    return VFS.SQLITE_OK;
  }

  xShmUnmap(fileId: number, _deleteFlag: number): number {
    return this.#shm.unmap(fileId);
  }

  #withFile(fileId: number, ioerr: number, fn: (file: OpenFile<H>) => number): number {
    const file = this.open.get(fileId);
    if (!file) return ioerr;
    return this.#guard(ioerr, () => fn(file));
  }

  // A throw must never cross into wasm: record it and return a SQLite code.
  #guard(fallback: number, fn: () => number): number {
    try {
      return fn();
    } catch (e) {
      this.#lastError = e instanceof Error ? e.message : String(e);
      return e instanceof HostIOError ? e.sqliteCode : fallback;
    }
  }
}
