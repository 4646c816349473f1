/**
 * The WAL index ("-shm") kept in wasm memory and shared by the connections of
 * one engine. With it, WAL databases work with normal locking: readers run
 * beside one writer, and a backup can read a snapshot while the app commits.
 * Without it sqlite3mc calls a null xShmMap and the wasm traps.
 *
 * A fresh index is all zeros, which makes SQLite rebuild it from the -wal file
 * ("recovery"), so WAL files left by another process are read correctly. The
 * index is never written to disk: another process cannot see our readers or
 * writers, which is why cross-process WAL use is unsafe (see README).
 */
import * as VFS from '@journeyapps/wa-sqlite/src/VFS.js';

const SHM_UNLOCK = 1;
const SHM_LOCK = 2;
const SHM_SHARED = 4;
const SHM_EXCLUSIVE = 8;
const SHM_NLOCK = 8;
// Not in wa-sqlite's constants table.
export const SQLITE_IOERR_SHMMAP = VFS.SQLITE_IOERR | (21 << 8);
const SQLITE_IOERR_SHMLOCK = VFS.SQLITE_IOERR | (20 << 8);

interface Index {
  regions: number[];
  users: Set<number>;
  shared: Set<number>[];
  exclusive: (number | null)[];
}

interface WasmHeap {
  _sqlite3_malloc(n: number): number;
  _sqlite3_free(p: number): void;
  HEAPU8: Uint8Array;
  HEAP32: Int32Array;
}

export class ShmTable {
  #indexes = new Map<string, Index>();
  #fileToPath = new Map<number, string>();
  constructor(private readonly heap: WasmHeap) {}

  map(fileId: number, path: string, region: number, size: number, extend: boolean, pOut: number): number {
    const index = this.#indexFor(fileId, path);
    let ptr = index.regions[region];
    if (ptr === undefined && extend) {
      ptr = this.heap._sqlite3_malloc(size);
      if (!ptr) return VFS.SQLITE_NOMEM;
      this.heap.HEAPU8.fill(0, ptr, ptr + size);
      index.regions[region] = ptr;
    }
    this.heap.HEAP32[pOut >> 2] = ptr ?? 0;
    return VFS.SQLITE_OK;
  }

  lock(fileId: number, offset: number, n: number, flags: number): number {
    const path = this.#fileToPath.get(fileId);
    const index = path === undefined ? undefined : this.#indexes.get(path);
    if (!index || offset < 0 || offset + n > SHM_NLOCK) return SQLITE_IOERR_SHMLOCK;
    const slots = Array.from({ length: n }, (_, i) => offset + i);
    if (flags & SHM_UNLOCK) {
      for (const s of slots) {
        index.shared[s]!.delete(fileId);
        if (index.exclusive[s] === fileId) index.exclusive[s] = null;
      }
      return VFS.SQLITE_OK;
    }
    if (!(flags & SHM_LOCK)) return SQLITE_IOERR_SHMLOCK;
    if (flags & SHM_SHARED) {
      for (const s of slots) if (index.exclusive[s] !== null && index.exclusive[s] !== fileId) return VFS.SQLITE_BUSY;
      for (const s of slots) index.shared[s]!.add(fileId);
      return VFS.SQLITE_OK;
    }
    if (flags & SHM_EXCLUSIVE) {
      for (const s of slots) {
        const e = index.exclusive[s];
        if ((e !== null && e !== fileId) || [...index.shared[s]!].some((id) => id !== fileId)) return VFS.SQLITE_BUSY;
      }
      for (const s of slots) index.exclusive[s] = fileId;
      return VFS.SQLITE_OK;
    }
    return SQLITE_IOERR_SHMLOCK;
  }

  /** The connection is done with the index; the last one out frees it. */
  unmap(fileId: number): number {
    const path = this.#fileToPath.get(fileId);
    this.#fileToPath.delete(fileId);
    const index = path === undefined ? undefined : this.#indexes.get(path);
    if (!index || path === undefined) return VFS.SQLITE_OK;
    index.users.delete(fileId);
    index.shared.forEach((set) => set.delete(fileId));
    index.exclusive = index.exclusive.map((e) => (e === fileId ? null : e));
    if (index.users.size === 0) {
      for (const ptr of index.regions) if (ptr) this.heap._sqlite3_free(ptr);
      this.#indexes.delete(path);
    }
    return VFS.SQLITE_OK;
  }

  #indexFor(fileId: number, path: string): Index {
    let index = this.#indexes.get(path);
    if (!index) {
      index = {
        regions: [],
        users: new Set(),
        shared: Array.from({ length: SHM_NLOCK }, () => new Set<number>()),
        exclusive: new Array(SHM_NLOCK).fill(null),
      };
      this.#indexes.set(path, index);
    }
    index.users.add(fileId);
    this.#fileToPath.set(fileId, path);
    return index;
  }
}
