/**
 * SQLite's five file lock levels, honoured between connections of one engine
 * (one wasm instance, so one JS thread). This is what os_unix.c does with
 * fcntl, minus the other processes: JavaScript hosts give us no fcntl locks,
 * so nothing here is visible to, or sees, another process.
 */
import * as VFS from '@journeyapps/wa-sqlite/src/VFS.js';

interface PathLocks {
  shared: Set<number>;
  reserved: number | null;
  pending: number | null;
  exclusive: number | null;
}

export class LockTable {
  #paths = new Map<string, PathLocks>();
  #levels = new Map<number, { path: string; level: number }>();

  /** Registers an open file; `path` may be shared by several connections. */
  attach(fileId: number, path: string): void {
    this.#levels.set(fileId, { path, level: VFS.SQLITE_LOCK_NONE });
  }

  detach(fileId: number): void {
    this.unlock(fileId, VFS.SQLITE_LOCK_NONE);
    this.#levels.delete(fileId);
  }

  lock(fileId: number, level: number): number {
    const file = this.#levels.get(fileId);
    if (!file) return VFS.SQLITE_IOERR_LOCK;
    if (file.level >= level) return VFS.SQLITE_OK;
    const locks = this.#locksFor(file.path);
    const other = (holder: number | null) => holder !== null && holder !== fileId;

    if (level === VFS.SQLITE_LOCK_SHARED) {
      if (other(locks.pending) || other(locks.exclusive)) return VFS.SQLITE_BUSY;
      locks.shared.add(fileId);
    } else if (level === VFS.SQLITE_LOCK_RESERVED) {
      if (other(locks.reserved) || other(locks.exclusive)) return VFS.SQLITE_BUSY;
      locks.reserved = fileId;
    } else if (level === VFS.SQLITE_LOCK_EXCLUSIVE) {
      if (other(locks.pending) || other(locks.exclusive)) return VFS.SQLITE_BUSY;
      // PENDING keeps new readers out while the ones already in drain.
      locks.pending = fileId;
      if (locks.shared.size > 1) return VFS.SQLITE_BUSY;
      locks.exclusive = fileId;
    } else {
      return VFS.SQLITE_IOERR_LOCK;
    }
    file.level = level;
    return VFS.SQLITE_OK;
  }

  unlock(fileId: number, level: number): number {
    const file = this.#levels.get(fileId);
    if (!file) return VFS.SQLITE_OK;
    const locks = this.#paths.get(file.path);
    if (locks && file.level > level) {
      if (locks.exclusive === fileId) locks.exclusive = null;
      if (locks.pending === fileId) locks.pending = null;
      if (locks.reserved === fileId) locks.reserved = null;
      if (level === VFS.SQLITE_LOCK_NONE) locks.shared.delete(fileId);
      if (!locks.shared.size && locks.reserved === null && locks.pending === null) {
        this.#paths.delete(file.path);
      }
    }
    file.level = Math.min(file.level, level);
    return VFS.SQLITE_OK;
  }

  /** No connection of this engine holds any lock on `path`. */
  isIdle(path: string): boolean {
    return !this.#paths.has(path);
  }

  isReserved(fileId: number): boolean {
    const file = this.#levels.get(fileId);
    const locks = file && this.#paths.get(file.path);
    if (!locks) return false;
    return locks.reserved !== null || locks.pending !== null || locks.exclusive !== null;
  }

  #locksFor(path: string): PathLocks {
    let locks = this.#paths.get(path);
    if (!locks) {
      locks = { shared: new Set(), reserved: null, pending: null, exclusive: null };
      this.#paths.set(path, locks);
    }
    return locks;
  }
}
