/**
 * SQLite VFS over the Origin Private File System, for dedicated workers.
 *
 * Every database file is a plain OPFS file under its own name (so backups,
 * downloads and imports are ordinary files). SQLite's VFS calls are
 * synchronous but OPFS hands out sync access handles asynchronously, so
 * `prepare()` (awaited by openDatabase) opens handles for the database and
 * its -journal and -wal before SQLite runs, and they stay open until the
 * last connection closes. That is the fix for the zero-salt and
 * "file is not a database" failures seen with OPFSCoopSyncVFS: there, the
 * handle was released after the first header read and the cipher layer's
 * salt read at key time failed silently. Here a read never lacks a handle.
 *
 * Handles use mode 'readwrite-unsafe', so other tabs and workers can open
 * the same files; SQLite's locks are carried across them by one Web Lock per
 * database, taken when this engine first locks the file and let go when no
 * connection here holds a lock. (A connection in WAL mode holds a lock for as
 * long as it is open, so a WAL database is used by one tab at a time; the WAL
 * index lives in this worker's memory.)
 */
import * as VFS from '@journeyapps/wa-sqlite/src/VFS.js';
import { HostVFS, type PathInfo } from './host-vfs.ts';

interface SyncHandle {
  read(buffer: Uint8Array, options?: { at: number }): number;
  write(buffer: Uint8Array, options?: { at: number }): number;
  truncate(size: number): void;
  flush(): void;
  getSize(): number;
  close(): void;
}

interface Prepared {
  handle: CachedHandle;
  refs: number;
  /** Removed on release when still empty: journals we made, or a database whose creation failed. */
  removeIfEmpty: boolean;
}

const SIDE_SUFFIXES = ['-journal', '-wal'];

/**
 * Each call on a sync access handle costs a few hundred microseconds in
 * Chromium (measured here: 6000 reads of 4 KiB took 1.85 s), so page-sized
 * reads are served from blocks read ahead in one call. Writes go straight to
 * the file and patch any cached block, so the file is always current; the
 * cache is dropped whenever another tab could have written (each time this
 * worker takes the database's Web Lock anew).
 */
class CachedHandle implements SyncHandle {
  static readonly BLOCK = 256 * 1024;
  static readonly BLOCKS = 64; // 16 MiB per file at most
  readonly #blocks = new Map<number, Uint8Array>();
  #size: number;

  constructor(private readonly raw: SyncHandle) {
    this.#size = raw.getSize();
  }

  invalidate(): void {
    this.#blocks.clear();
    this.#size = this.raw.getSize();
  }

  read(buffer: Uint8Array, options = { at: 0 }): number {
    if (buffer.length > CachedHandle.BLOCK) return this.raw.read(buffer, options);
    let done = 0;
    while (done < buffer.length) {
      const at = options.at + done;
      if (at >= this.#size) break;
      const index = Math.floor(at / CachedHandle.BLOCK);
      const block = this.#block(index);
      const from = at - index * CachedHandle.BLOCK;
      const n = Math.min(buffer.length - done, block.length - from);
      if (n <= 0) break;
      buffer.set(block.subarray(from, from + n), done);
      done += n;
    }
    return done;
  }

  write(buffer: Uint8Array, options = { at: 0 }): number {
    const n = this.raw.write(buffer, options);
    this.#size = Math.max(this.#size, options.at + n);
    for (const [index, block] of this.#blocks) {
      const start = index * CachedHandle.BLOCK;
      const lo = Math.max(start, options.at);
      const hi = Math.min(start + CachedHandle.BLOCK, options.at + n);
      if (lo >= hi) continue;
      if (hi - start > block.length) this.#blocks.delete(index); // block grows: read it again
      else block.set(buffer.subarray(lo - options.at, hi - options.at), lo - start);
    }
    return n;
  }

  truncate(size: number): void {
    this.raw.truncate(size);
    this.#blocks.clear();
    this.#size = size;
  }

  flush(): void {
    this.raw.flush();
  }

  getSize(): number {
    return this.#size;
  }

  close(): void {
    this.#blocks.clear();
    this.raw.close();
  }

  #block(index: number): Uint8Array {
    let block = this.#blocks.get(index);
    if (block) {
      this.#blocks.delete(index); // most recently used goes last
    } else {
      const start = index * CachedHandle.BLOCK;
      const length = Math.min(CachedHandle.BLOCK, this.#size - start);
      // The least recently used block's memory is read into again: a new block per miss left a scan's
      // worth of garbage in the worker (160 MB at the peak of a restore's quick_check of 200 MB).
      let memory: ArrayBufferLike | undefined;
      if (this.#blocks.size >= CachedHandle.BLOCKS) {
        const oldest = this.#blocks.keys().next().value!;
        memory = this.#blocks.get(oldest)!.buffer;
        this.#blocks.delete(oldest);
      }
      const into = memory && memory.byteLength >= length ? new Uint8Array(memory, 0, length) : new Uint8Array(length);
      block = into.subarray(0, this.raw.read(into, { at: start }));
    }
    this.#blocks.set(index, block);
    return block;
  }
}

/** A temp file (SQLite's statement journals, sorts) kept in memory. */
class MemoryHandle implements SyncHandle {
  #data = new Uint8Array(0);
  #size = 0;
  read(buffer: Uint8Array, options = { at: 0 }): number {
    const n = Math.max(0, Math.min(buffer.length, this.#size - options.at));
    buffer.set(this.#data.subarray(options.at, options.at + n));
    return n;
  }
  write(buffer: Uint8Array, options = { at: 0 }): number {
    const end = options.at + buffer.length;
    if (end > this.#data.length) {
      const grown = new Uint8Array(Math.max(end, this.#data.length * 2));
      grown.set(this.#data.subarray(0, this.#size));
      this.#data = grown;
    }
    this.#data.set(buffer, options.at);
    this.#size = Math.max(this.#size, end);
    return buffer.length;
  }
  truncate(size: number): void {
    this.#size = Math.min(this.#size, size);
  }
  flush(): void {}
  getSize(): number {
    return this.#size;
  }
  close(): void {}
}

export class OpfsVFS extends HostVFS<SyncHandle> {
  readonly #prepared = new Map<string, Prepared>();
  readonly #missingParents = new Set<string>();
  readonly #webLocks = new WebLockRelay(
    (path) => this.locks.isIdle(path),
    // Another tab may have written while we did not hold the lock.
    (path) => [path, ...SIDE_SUFFIXES.map((s) => path + s)].forEach((p) => this.#prepared.get(p)?.handle.invalidate()),
  );

  override async enter(path: string): Promise<void> {
    await this.#webLocks.pin(path);
  }

  override exit(path: string): void {
    this.#webLocks.unpin(path);
  }

  /** Opens handles for `path` and its journals. Creates the database file only when `create`. */
  override async prepare(path: string, create: boolean): Promise<{ created: boolean }> {
    const existing = this.#prepared.get(path);
    if (existing) {
      existing.refs++;
      return { created: false };
    }
    const dir = await openDir(path, false);
    if (!dir) {
      this.#missingParents.add(path);
      return { created: false };
    }
    this.#missingParents.delete(path);
    const main = await openFile(dir, basename(path), create);
    if (!main) return { created: false };
    this.#prepared.set(path, { handle: new CachedHandle(main.handle), refs: 1, removeIfEmpty: main.created });
    for (const suffix of SIDE_SUFFIXES) {
      const side = (await openFile(dir, basename(path) + suffix, true))!;
      this.#prepared.set(path + suffix, { handle: new CachedHandle(side.handle), refs: 1, removeIfEmpty: true });
    }
    return { created: main.created };
  }

  override async release(path: string): Promise<void> {
    const main = this.#prepared.get(path);
    if (!main || --main.refs > 0) return;
    const dir = await openDir(path, false);
    for (const p of [path, ...SIDE_SUFFIXES.map((s) => path + s)]) {
      const prepared = this.#prepared.get(p);
      if (!prepared) continue;
      this.#prepared.delete(p);
      const empty = prepared.handle.getSize() === 0;
      prepared.handle.close();
      if (empty && prepared.removeIfEmpty) await dir?.removeEntry(basename(p)).catch(() => {});
    }
  }

  protected openHandle(path: string | null): SyncHandle | null {
    if (path === null) return new MemoryHandle();
    return this.#prepared.get(path)?.handle ?? null;
  }

  protected closeHandle(handle: SyncHandle, deleteOnClose: boolean): void {
    // Prepared handles stay open until release(); a temp file simply goes away.
    if (deleteOnClose) handle.truncate(0);
  }

  protected readAt(handle: SyncHandle, into: Uint8Array, offset: number): number {
    return handle.read(into, { at: offset });
  }

  protected writeAt(handle: SyncHandle, data: Uint8Array, offset: number): void {
    const n = handle.write(data, { at: offset });
    if (n !== data.length) throw new Error(`short write: ${n} of ${data.length} bytes`);
  }

  protected truncateTo(handle: SyncHandle, size: number): void {
    handle.truncate(size);
  }

  protected syncHandle(handle: SyncHandle): void {
    handle.flush();
  }

  protected sizeOf(handle: SyncHandle): number {
    return handle.getSize();
  }

  /** Journals are emptied rather than removed (their handles stay prepared); release() removes empty ones. */
  deleteFile(path: string): boolean {
    const prepared = this.#prepared.get(path);
    if (!prepared || prepared.handle.getSize() === 0) return false;
    prepared.handle.truncate(0);
    prepared.handle.flush();
    return true;
  }

  info(path: string): PathInfo {
    const prepared = this.#prepared.get(path);
    const isSide = SIDE_SUFFIXES.some((s) => path.endsWith(s));
    const size = prepared ? prepared.handle.getSize() : null;
    // An empty journal is one we made ahead of time: to SQLite it does not exist.
    return { size: isSide && size === 0 ? null : size, parentExists: !this.#missingParents.has(path) };
  }

  resolve(path: string): string {
    return '/' + path.split('/').filter((p) => p && p !== '.').join('/');
  }

  readRange(path: string, offset: number, into: Uint8Array): number | null {
    const prepared = this.#prepared.get(path);
    if (!prepared) return null;
    return prepared.handle.read(into.subarray(0, Math.max(0, Math.min(into.length, prepared.handle.getSize() - offset))), { at: offset });
  }

  override jLock(fileId: number, level: number): number {
    const file = this.open.get(fileId);
    if (file && file.flags & VFS.SQLITE_OPEN_MAIN_DB && !this.#webLocks.held(file.path)) {
      // Outside an operation (enter() takes it first): ask, and let the caller retry.
      void this.#webLocks.request(file.path);
      return VFS.SQLITE_BUSY;
    }
    return super.jLock(fileId, level);
  }

  override jUnlock(fileId: number, level: number): number {
    const rc = super.jUnlock(fileId, level);
    const file = this.open.get(fileId);
    if (file && file.flags & VFS.SQLITE_OPEN_MAIN_DB && this.locks.isIdle(file.path)) this.#webLocks.releaseSoon(file.path);
    return rc;
  }

  override jClose(fileId: number): number {
    const file = this.open.get(fileId);
    const rc = super.jClose(fileId);
    if (file && this.locks.isIdle(file.path)) this.#webLocks.releaseSoon(file.path);
    return rc;
  }
}

/**
 * One exclusive Web Lock per database path, held while a connection of this
 * engine is inside an operation (pinned) or holds a SQLite lock on the file.
 */
class WebLockRelay {
  readonly #held = new Map<string, () => void>();
  readonly #pending = new Map<string, Promise<void>>();
  readonly #pins = new Map<string, number>();
  constructor(
    private readonly idle: (path: string) => boolean,
    private readonly acquired: (path: string) => void,
  ) {}

  held(path: string): boolean {
    return this.#held.has(path);
  }

  /** Resolves once the lock is ours. */
  request(path: string): Promise<void> {
    if (this.#held.has(path)) return Promise.resolve();
    let pending = this.#pending.get(path);
    if (!pending) {
      pending = new Promise<void>((granted) => {
        void navigator.locks.request(`cipherkeep-db:${path}`, () =>
          new Promise<void>((release) => {
            this.#pending.delete(path);
            this.#held.set(path, release);
            this.acquired(path);
            granted();
          }),
        );
      });
      this.#pending.set(path, pending);
    }
    return pending;
  }

  async pin(path: string): Promise<void> {
    this.#pins.set(path, (this.#pins.get(path) ?? 0) + 1);
    await this.request(path);
  }

  unpin(path: string): void {
    const n = (this.#pins.get(path) ?? 1) - 1;
    if (n > 0) this.#pins.set(path, n);
    else this.#pins.delete(path);
    this.releaseSoon(path);
  }

  // Let go after the current task, unless an operation or a SQLite lock still needs it.
  releaseSoon(path: string): void {
    setTimeout(() => {
      const release = this.#held.get(path);
      if (release && !this.#pins.has(path) && this.idle(path)) {
        this.#held.delete(path);
        release();
      }
    }, 0);
  }
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

async function openDir(path: string, create: boolean): Promise<FileSystemDirectoryHandle | null> {
  let dir = await navigator.storage.getDirectory();
  const parts = path.split('/').filter(Boolean).slice(0, -1);
  try {
    for (const part of parts) dir = await dir.getDirectoryHandle(part, { create });
    return dir;
  } catch (e) {
    if ((e as DOMException).name === 'NotFoundError' || (e as DOMException).name === 'TypeMismatchError') return null;
    throw e;
  }
}

async function openFile(dir: FileSystemDirectoryHandle, name: string, create: boolean): Promise<{ handle: SyncHandle; created: boolean } | null> {
  let file: FileSystemFileHandle;
  let created = false;
  try {
    file = await dir.getFileHandle(name);
  } catch (e) {
    if ((e as DOMException).name !== 'NotFoundError' || !create) {
      if ((e as DOMException).name === 'NotFoundError') return null;
      throw e;
    }
    file = await dir.getFileHandle(name, { create: true });
    created = true;
  }
  const handle = await (file as unknown as { createSyncAccessHandle(o: object): Promise<SyncHandle> }).createSyncAccessHandle({
    mode: 'readwrite-unsafe',
  });
  return { handle, created };
}
