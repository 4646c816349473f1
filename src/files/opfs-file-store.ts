/**
 * FileStore over the Origin Private File System (pages and workers). Writes
 * go through createWritable(), which swaps the file in whole on close; quota
 * errors become StorageFullError; free space is the origin's quota minus its
 * usage; the lock is a Web Lock, shared by every tab and worker of the origin.
 */
import { LockTimeoutError, StorageFullError } from '../engine/errors.ts';
import { platformLock, type FileInfo, type FileReader, type FileStore, type FileWriter, type HeldLock } from './file-store.ts';

const isNotFound = (e: unknown) => ['NotFoundError', 'TypeMismatchError'].includes((e as DOMException)?.name);
const COPY_CHUNK_BYTES = 4 << 20;
const isQuota = (e: unknown) => (e as DOMException)?.name === 'QuotaExceededError';

function split(path: string): { dirs: string[]; name: string } {
  const parts = path.split('/').filter((p) => p && p !== '.');
  return { dirs: parts.slice(0, -1), name: parts.at(-1) ?? '' };
}

async function dirHandle(parts: string[], create = false): Promise<FileSystemDirectoryHandle> {
  let dir = await navigator.storage.getDirectory();
  for (const part of parts) dir = await dir.getDirectoryHandle(part, { create });
  return dir;
}

/** The file at `path` in the origin private file system, or null. */
export async function fileHandle(path: string): Promise<FileSystemFileHandle | null> {
  const { dirs, name } = split(path);
  try {
    return await (await dirHandle(dirs)).getFileHandle(name);
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
}

type SyncReader = { read(into: Uint8Array, o: { at: number }): number; close(): void };

/** Fills `into` from `offset` through a sync access handle, as far as the file goes; returns the count. */
function readFully(sync: SyncReader, offset: number, into: Uint8Array): number {
  let done = 0;
  while (done < into.length) {
    const got = sync.read(into.subarray(done), { at: offset + done });
    if (got <= 0) break;
    done += got;
  }
  return done;
}

/**
 * Reads `handle` while the engine may hold it open: through a sync access
 * handle in the engine's own mode ('readwrite-unsafe', only read here), as
 * handles of one mode can be shared where a 'read-only' one is refused; in a
 * browser without handle modes (which would take the file for itself), or
 * outside a worker, or when a writer holds the file, through Blob reads.
 */
export async function openSharedReader(handle: FileSystemFileHandle): Promise<{ read(offset: number, into: Uint8Array): Promise<number>; close(): void }> {
  const handleClass = (globalThis as { FileSystemSyncAccessHandle?: { prototype: object } }).FileSystemSyncAccessHandle;
  const modes = handleClass !== undefined && 'mode' in handleClass.prototype;
  let sync: SyncReader | undefined;
  if (modes && 'createSyncAccessHandle' in handle) {
    try {
      sync = await (handle as unknown as { createSyncAccessHandle(o: object): Promise<SyncReader> }).createSyncAccessHandle({ mode: 'readwrite-unsafe' });
    } catch (e) {
      if (isNotFound(e)) throw e;
    }
  }
  if (sync) {
    const s = sync;
    return {
      read: async (offset, into) => readFully(s, offset, into),
      close: () => s.close(),
    };
  }
  const file = await handle.getFile();
  return {
    read: async (offset, into) => {
      const bytes = new Uint8Array(await file.slice(offset, offset + into.length).arrayBuffer());
      into.set(bytes);
      return bytes.length;
    },
    close: () => {},
  };
}

export class OpfsFileStore implements FileStore {
  join = (dir: string, name: string) => `/${[...split(dir).dirs, split(dir).name, name].filter(Boolean).join('/')}`;
  dirname = (path: string) => `/${split(path).dirs.join('/')}`;
  basename = (path: string) => split(path).name;

  async list(dir: string, prefix: string): Promise<FileInfo[]> {
    let handle: FileSystemDirectoryHandle;
    try {
      handle = await dirHandle(dir.split('/').filter(Boolean));
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
    const out: FileInfo[] = [];
    for await (const [name, entry] of (handle as unknown as AsyncIterable<[string, FileSystemHandle]>)) {
      if (entry.kind !== 'file' || !name.startsWith(prefix)) continue;
      try {
        const file = await (entry as FileSystemFileHandle).getFile();
        out.push({ name, size: file.size, mtimeMs: file.lastModified });
      } catch (e) {
        if (!isNotFound(e)) throw e; // removed while we listed
      }
    }
    return out;
  }

  async stat(path: string): Promise<FileInfo | null> {
    const handle = await fileHandle(path);
    if (!handle) return null;
    try {
      const file = await handle.getFile();
      return { name: split(path).name, size: file.size, mtimeMs: file.lastModified };
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  async read(path: string, offset: number, length: number): Promise<Uint8Array> {
    const handle = await fileHandle(path);
    if (!handle) throw new DOMException(`no such file: ${path}`, 'NotFoundError');
    const file = await handle.getFile();
    return new Uint8Array(await file.slice(offset, offset + length).arrayBuffer());
  }

  /**
   * In a worker, through a read-only sync access handle: the bytes land in
   * `into` with no copy. Reads of one file take turns (a browser without
   * read-only handles gives one handle per file at a time). Elsewhere, or
   * when the handle cannot be had, a Blob read copied in.
   */
  async readInto(path: string, offset: number, into: Uint8Array): Promise<number> {
    const handle = await fileHandle(path);
    if (!handle) throw new DOMException(`no such file: ${path}`, 'NotFoundError');
    if ('createSyncAccessHandle' in handle) {
      const n = await this.#readers.run(path, async () => {
        let sync: SyncReader;
        try {
          sync = await (handle as unknown as { createSyncAccessHandle(o: { mode: string }): Promise<SyncReader> }).createSyncAccessHandle({ mode: 'read-only' });
        } catch (e) {
          if (isNotFound(e)) throw e;
          return null; // held by a writer: read a snapshot instead
        }
        try {
          return readFully(sync, offset, into);
        } finally {
          sync.close();
        }
      });
      if (n !== null) return n;
    }
    const bytes = new Uint8Array(await (await handle.getFile()).slice(offset, offset + into.length).arrayBuffer());
    into.set(bytes);
    return bytes.length;
  }

  readonly #readers = new TakingTurns();

  /** One shared sync access handle for every read (openSharedReader): the engine may hold the file open meanwhile. */
  async openReader(path: string): Promise<FileReader> {
    const handle = await fileHandle(path);
    if (!handle) throw new DOMException(`no such file: ${path}`, 'NotFoundError');
    const reader = await openSharedReader(handle);
    let closed = false;
    return {
      read: async (offset, into) => {
        if (closed) throw new DOMException(`${path} was read after its reader was closed`, 'InvalidStateError');
        return reader.read(offset, into);
      },
      close: async () => {
        if (!closed) reader.close();
        closed = true;
      },
    };
  }

  /**
   * The snapshot's whole-file copy (snapshot.ts) through one buffer: a Blob
   * read per chunk left each chunk's garbage in the worker's heap, 100 to
   * 200 MB of it at its peak on a 500 MB database (bench/page-store-browser.ts).
   */
  async copyPrefix(from: string, to: string, length: number): Promise<void> {
    const handle = await fileHandle(from);
    if (!handle) throw new DOMException(`no such file: ${from}`, 'NotFoundError');
    const source = await openSharedReader(handle);
    try {
      const writer = await this.create(to);
      try {
        const buffer = new Uint8Array(Math.min(COPY_CHUNK_BYTES, length));
        for (let done = 0; done < length; ) {
          const n = await source.read(done, buffer.subarray(0, Math.min(buffer.length, length - done)));
          if (n === 0) break;
          await writer.write(buffer.subarray(0, n)); // written before the next read fills the buffer again
          done += n;
        }
        await writer.close();
      } catch (e) {
        await writer.abort();
        throw e;
      }
    } finally {
      source.close();
    }
  }

  async create(path: string): Promise<FileWriter> {
    const { dirs, name } = split(path);
    const dir = await dirHandle(dirs);
    if (await fileHandle(path)) throw new DOMException(`file exists: ${path}`, 'InvalidModificationError');
    const handle = await dir.getFileHandle(name, { create: true });
    const remove = () => dir.removeEntry(name).catch(() => {});
    const full = (e: unknown) => (isQuota(e) ? new StorageFullError(`storage quota exceeded while writing ${path}`, { cause: e }) : e);
    // In a worker, a sync access handle writes in place: far faster than a
    // writable stream, which goes through a swap file.
    const sync = 'createSyncAccessHandle' in handle
      ? await (handle as unknown as { createSyncAccessHandle(): Promise<{ write(b: Uint8Array, o: { at: number }): number; flush(): void; getSize(): number; close(): void }> }).createSyncAccessHandle()
      : null;
    if (sync) {
      let at = 0;
      return {
        async write(chunk) {
          let n: number;
          try {
            n = sync.write(chunk, { at });
          } catch (e) {
            throw full(e);
          }
          // Over quota, a sync access handle writes what fits and says so —
          // or, in a private window, reports a count larger than the chunk.
          if (n !== chunk.length) throw new StorageFullError(`storage quota exceeded while writing ${path}: wrote ${n} of ${chunk.length} bytes`);
          at += n;
        },
        async close() {
          let size = -1;
          try {
            sync.flush();
            size = sync.getSize();
          } catch (e) {
            sync.close();
            await remove();
            throw full(e);
          }
          sync.close();
          // Over quota, writes can come up short without a word: check what landed.
          if (size !== at) {
            await remove();
            throw new StorageFullError(`storage quota exceeded while writing ${path}: ${size} of ${at} bytes landed`);
          }
        },
        async abort() {
          try {
            sync.close();
          } catch {
            // closing is best effort: the file is removed either way
          }
          await remove();
        },
      };
    }
    const writable = await handle.createWritable({ keepExistingData: false });
    return {
      async write(chunk) {
        try {
          await writable.write(chunk as Uint8Array<ArrayBuffer>);
        } catch (e) {
          throw full(e);
        }
      },
      async close() {
        try {
          await writable.close();
        } catch (e) {
          await remove();
          throw full(e);
        }
      },
      async abort() {
        await writable.abort().catch(() => {});
        await remove();
      },
    };
  }

  async rename(from: string, to: string): Promise<void> {
    const handle = await fileHandle(from);
    if (!handle) throw new DOMException(`no such file: ${from}`, 'NotFoundError');
    const target = split(to);
    const dir = await dirHandle(target.dirs);
    const move = () => (handle as unknown as { move(d: FileSystemDirectoryHandle, n: string): Promise<void> }).move(dir, target.name);
    try {
      // Chromium's move() replaces an existing target in one step (measured).
      await move();
    } catch (e) {
      // Elsewhere it may refuse to: clear the target, then move (not atomic there).
      if ((e as DOMException)?.name !== 'InvalidModificationError') throw e;
      await dir.removeEntry(target.name);
      await move();
    }
  }

  async remove(path: string): Promise<boolean> {
    const { dirs, name } = split(path);
    try {
      await (await dirHandle(dirs)).removeEntry(name);
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  async ensureDir(path: string): Promise<boolean> {
    const parts = path.split('/').filter(Boolean);
    const existed = await dirHandle(parts).then(() => true, () => false);
    if (!existed) await dirHandle(parts, true);
    return !existed;
  }

  async freeSpace(): Promise<number> {
    const { quota, usage } = await navigator.storage.estimate();
    if (quota === undefined || usage === undefined) throw new Error('navigator.storage.estimate() gave no quota');
    return quota - usage;
  }

  async restrictToOwner(): Promise<void> {
    // OPFS is private to the origin already; there are no permission bits.
  }

  lock(path: string, timeoutMs: number): Promise<HeldLock> {
    return new Promise<HeldLock>((resolve, reject) => {
      const signal = Number.isFinite(timeoutMs) ? AbortSignal.timeout(timeoutMs) : undefined;
      navigator.locks
        .request(`cipherkeep-backup:${path}`, { signal }, () => new Promise<void>((release) => resolve(platformLock(async () => release()))))
        .catch((e: unknown) => reject((e as DOMException)?.name === 'TimeoutError' || (e as DOMException)?.name === 'AbortError'
          ? new LockTimeoutError(`lock busy for ${timeoutMs} ms: ${path}`)
          : e));
    });
  }
}

/** One task at a time per key; keys with nothing queued are forgotten. */
class TakingTurns {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    const mine = before.then(task, task);
    const tail = mine.catch(() => {});
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return mine;
  }
}
