/**
 * FileStore over `node:fs`, for Node and Deno. Writes are fsynced on close,
 * renames are POSIX-atomic, and the lock is a directory of generation files
 * (node-lock.ts), visible to every process on the machine that uses it.
 */
import fs, { type FileHandle } from 'node:fs/promises';
import fsCallback, { constants as C } from 'node:fs';
import nodePath from 'node:path';
import { StorageFullError, UnsafeDirectoryError } from '../engine/errors.ts';
import { acquireLockDir } from './node-lock.ts';
import type { FileInfo, FileReader, FileStore, FileWriter, HeldLock } from './file-store.ts';

const FULL = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);
const errno = (e: unknown) => (e as NodeJS.ErrnoException)?.code;

function mapError(e: unknown, path: string): unknown {
  return FULL.has(errno(e) ?? '') ? new StorageFullError(`storage full while writing ${path}`, { cause: e }) : e;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}


/** Writes and reads of at least this much go through the thread pool (see create, openReader). */
const OFF_THREAD_WRITE_BYTES = 1 << 20;
export class NodeFileStore implements FileStore {
  join = (dir: string, name: string) => nodePath.join(dir, name);
  dirname = (path: string) => nodePath.dirname(path);
  basename = (path: string) => nodePath.basename(path);

  async list(dir: string, prefix: string, onSkip?: (name: string, why: string) => void): Promise<FileInfo[]> {
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (e) {
      if (errno(e) === 'ENOENT') return [];
      throw e;
    }
    const infos = await Promise.all(names.filter((n) => n.startsWith(prefix)).map(async (name): Promise<FileInfo | null> => {
      // lstat: a link named like a backup is not a backup (it could point anywhere).
      const s = await fs.lstat(nodePath.join(dir, name)).catch((e) => {
        if (errno(e) !== 'ENOENT') onSkip?.(name, `cannot be looked at (${errno(e)})`);
        return null;
      });
      if (s && !s.isFile()) onSkip?.(name, s.isSymbolicLink() ? 'a symbolic link, not a file' : 'not a regular file');
      return s?.isFile() ? { name, size: s.size, mtimeMs: s.mtimeMs } : null;
    }));
    return infos.filter((i): i is FileInfo => i !== null);
  }

  async stat(path: string): Promise<FileInfo | null> {
    try {
      const s = await fs.stat(path);
      return s.isFile() ? { name: nodePath.basename(path), size: s.size, mtimeMs: s.mtimeMs, ...(s.blocks !== undefined && s.blocks !== null ? { allocated: s.blocks * 512 } : {}) } : null;
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return null;
      throw e;
    }
  }

  async read(path: string, offset: number, length: number): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    return buf.subarray(0, await this.readInto(path, offset, buf));
  }

  async readInto(path: string, offset: number, into: Uint8Array): Promise<number> {
    const handle = await fs.open(path, 'r');
    try {
      let done = 0;
      while (done < into.length) {
        const { bytesRead } = await handle.read(into, done, into.length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done;
    } finally {
      await handle.close();
    }
  }

  async openReader(path: string): Promise<FileReader> {
    const fd = await new Promise<number>((resolve, reject) => fsCallback.open(path, 'r', (e, fd) => (e ? reject(e) : resolve(fd))));
    let closed = false;
    return {
      async read(offset, into) {
        if (closed) throw new Error(`${path} was read after its reader was closed`);
        let done = 0;
        while (done < into.length) {
          // As create's writes: small reads synchronously, a trip through the thread pool costs more than they do.
          const n = into.length - done < OFF_THREAD_WRITE_BYTES
            ? fsCallback.readSync(fd, into, done, into.length - done, offset + done)
            : await new Promise<number>((resolve, reject) => fsCallback.read(fd, into, done, into.length - done, offset + done, (e, n) => (e ? reject(e) : resolve(n))));
          if (n === 0) break;
          done += n;
        }
        return done;
      },
      async close() {
        if (closed) return;
        closed = true;
        fsCallback.closeSync(fd);
      },
    };
  }

  async create(path: string): Promise<FileWriter> {
    // Small chunks are written synchronously: a trip through the thread pool
    // costs more than such a write. Large ones go through the pool, so a
    // caller that does not wait for one (a restore checking its next chunk)
    // keeps working while the kernel copies it.
    const fd = await new Promise<number>((resolve, reject) =>
      fsCallback.open(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600, (e, fd) => (e ? reject(e) : resolve(fd))),
    );
    let closed = false;
    const finish = () => {
      if (closed) return;
      closed = true;
      fsCallback.closeSync(fd);
    };
    return {
      async write(chunk) {
        try {
          let done = 0;
          while (done < chunk.length) {
            done += chunk.length - done < OFF_THREAD_WRITE_BYTES
              ? fsCallback.writeSync(fd, chunk, done, chunk.length - done)
              : await new Promise<number>((resolve, reject) => fsCallback.write(fd, chunk, done, chunk.length - done, null, (e, n) => (e ? reject(e) : resolve(n))));
          }
        } catch (e) {
          throw mapError(e, path);
        }
      },
      async close() {
        try {
          // In the thread pool: the caller may have other work for this thread meanwhile (the page store's next pack).
          await new Promise<void>((resolve, reject) => fsCallback.fsync(fd, (e) => (e ? reject(e) : resolve())));
          finish();
          await syncDir(nodePath.dirname(path));
        } catch (e) {
          throw mapError(e, path);
        }
      },
      async abort() {
        try {
          finish();
        } catch {
          // already failing: the file goes either way
        }
        await fs.rm(path, { force: true });
      },
    };
  }

  async copyPrefix(from: string, to: string, length: number): Promise<{ durable: Promise<void> }> {
    let handle: FileHandle | undefined;
    try {
      // copy_file_range underneath: the bytes never pass through JavaScript.
      await fs.copyFile(from, to, C.COPYFILE_EXCL);
      await fs.chmod(to, 0o600);
      handle = await fs.open(to, 'r+');
      if ((await handle.stat()).size !== length) await handle.truncate(length);
    } catch (e) {
      await handle?.close();
      if (errno(e) !== 'EEXIST') await fs.rm(to, { force: true });
      throw mapError(e, to);
    }
    // The disk's part (~50 ms per 100 MB here) goes on while the caller checks the copy. Failed, it takes the copy
    // away, as a failed copy does; marked handled here, it still rejects for whoever awaits it.
    const open = handle;
    const durable = open.sync().finally(() => open.close()).then(() => syncDir(nodePath.dirname(to))).catch(async (e: unknown) => {
      await fs.rm(to, { force: true });
      throw mapError(e, to);
    });
    durable.catch(() => {});
    return { durable };
  }

  async truncate(path: string, length: number): Promise<void> {
    const handle = await fs.open(path, 'r+');
    try {
      await handle.truncate(length);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async rename(from: string, to: string): Promise<void> {
    await fs.rename(from, to);
    await syncDir(nodePath.dirname(to));
  }

  async remove(path: string): Promise<boolean> {
    try {
      await fs.unlink(path);
      return true;
    } catch (e) {
      if (errno(e) === 'ENOENT') return false;
      throw e;
    }
  }

  async ensureDir(path: string): Promise<boolean> {
    return (await fs.mkdir(path, { recursive: true, mode: 0o700 })) !== undefined;
  }

  async refuseShared(dir: string): Promise<void> {
    const s = await fs.stat(dir);
    if (s.mode & 0o002 && !(s.mode & 0o1000)) {
      throw new UnsafeDirectoryError(`${dir} is writable by every user and has no sticky bit: anyone could replace or delete backups there`);
    }
  }

  async matchOwner(from: string, to: string): Promise<void> {
    const s = await fs.stat(from);
    const t = await fs.stat(to);
    if (s.uid !== t.uid || s.gid !== t.gid) await fs.chown(to, s.uid, s.gid).catch((e) => {
      if (errno(e) !== 'EPERM') throw e; // only root may give a file away; otherwise it is ours already
    });
    await fs.chmod(to, s.mode & 0o777);
  }

  async freeSpace(dir: string): Promise<number> {
    const s = await fs.statfs(dir);
    return Number(s.bavail) * Number(s.bsize);
  }

  async restrictToOwner(path: string, kind: 'file' | 'dir'): Promise<void> {
    await fs.chmod(path, kind === 'dir' ? 0o700 : 0o600);
  }

  lock(path: string, timeoutMs: number, staleMs?: number): Promise<HeldLock> {
    return acquireLockDir(path, timeoutMs, staleMs);
  }

  /**
   * Linux: any process (this one included) with the database, its WAL, WAL
   * index or journal open, found through /proc/<pid>/fd. Where /proc cannot
   * be read for every process (another user's, or no /proc), a `-wal` or
   * `-shm` beside the database counts as in use: SQLite removes both when
   * the last connection closes, though a crash leaves them too.
   */
  async inUse(path: string): Promise<string | null> {
    const full = nodePath.resolve(path);
    const names = new Set([full, ...['-wal', '-shm', '-journal'].map((s) => full + s)]);
    const scan = await openersOf(names);
    if (scan.found) return `process ${scan.found} has it open`;
    if (scan.complete) return null;
    for (const s of ['-wal', '-shm']) {
      if (await this.stat(full + s)) return `${nodePath.basename(full + s)} exists beside it (a connection has it open, or one crashed: open it once with its application)`;
    }
    return null;
  }
}

/** The first process found with one of `paths` open, and whether every process could be looked at. */
async function openersOf(paths: Set<string>): Promise<{ found: number | null; complete: boolean }> {
  let pids: string[];
  try {
    pids = (await fs.readdir('/proc')).filter((n) => /^\d+$/.test(n));
  } catch {
    return { found: null, complete: false };
  }
  let complete = pids.length > 0;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = await fs.readdir(`/proc/${pid}/fd`);
    } catch (e) {
      if (errno(e) !== 'ENOENT') complete = false; // EACCES: another user's process
      continue;
    }
    for (const fd of fds) {
      const target = await fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      if (paths.has(target)) return { found: Number(pid), complete };
    }
  }
  return { found: null, complete };
}
