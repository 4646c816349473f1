/**
 * FileStore over `node:fs`, for Node and Deno. Writes are fsynced on close,
 * renames are POSIX-atomic, and the lock is a lock file created with O_EXCL —
 * visible to every process on the machine that uses cipherkeep's lock.
 */
import fs from 'node:fs/promises';
import fsCallback, { constants as C } from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { LockTimeoutError, StorageFullError } from '../engine/errors.ts';
import type { FileInfo, FileStore, FileWriter, Release } from './file-store.ts';

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

/** A lock file older than this, not refreshed by its holder, is taken to be abandoned. */
const LOCK_STALE_MS = 60_000;
const LOCK_HEARTBEAT_MS = 10_000;

export class NodeFileStore implements FileStore {
  join = (dir: string, name: string) => nodePath.join(dir, name);
  dirname = (path: string) => nodePath.dirname(path);
  basename = (path: string) => nodePath.basename(path);

  async list(dir: string, prefix: string): Promise<FileInfo[]> {
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (e) {
      if (errno(e) === 'ENOENT') return [];
      throw e;
    }
    const infos = await Promise.all(names.filter((n) => n.startsWith(prefix)).map((n) => this.stat(nodePath.join(dir, n))));
    return infos.filter((i): i is FileInfo => i !== null);
  }

  async stat(path: string): Promise<FileInfo | null> {
    try {
      const s = await fs.stat(path);
      return s.isFile() ? { name: nodePath.basename(path), size: s.size, mtimeMs: s.mtimeMs } : null;
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return null;
      throw e;
    }
  }

  async read(path: string, offset: number, length: number): Promise<Uint8Array> {
    const handle = await fs.open(path, 'r');
    try {
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return buf.subarray(0, done);
    } finally {
      await handle.close();
    }
  }

  async create(path: string): Promise<FileWriter> {
    // Synchronous writes on purpose: large sequential chunks, and a trip
    // through the thread pool per chunk cost more than the write itself.
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
          while (done < chunk.length) done += fsCallback.writeSync(fd, chunk, done, chunk.length - done);
        } catch (e) {
          throw mapError(e, path);
        }
      },
      async close() {
        try {
          fsCallback.fsyncSync(fd);
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

  async copyPrefix(from: string, to: string, length: number): Promise<void> {
    try {
      // copy_file_range underneath: the bytes never pass through JavaScript.
      await fs.copyFile(from, to, C.COPYFILE_EXCL);
      await fs.chmod(to, 0o600);
      const handle = await fs.open(to, 'r+');
      try {
        if ((await handle.stat()).size !== length) await handle.truncate(length);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await syncDir(nodePath.dirname(to));
    } catch (e) {
      if (errno(e) !== 'EEXIST') await fs.rm(to, { force: true });
      throw mapError(e, to);
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

  async ensureDir(path: string): Promise<void> {
    await fs.mkdir(path, { recursive: true, mode: 0o700 });
  }

  async freeSpace(dir: string): Promise<number> {
    const s = await fs.statfs(dir);
    return Number(s.bavail) * Number(s.bsize);
  }

  async restrictToOwner(path: string, kind: 'file' | 'dir'): Promise<void> {
    await fs.chmod(path, kind === 'dir' ? 0o700 : 0o600);
  }

  async lock(path: string, timeoutMs: number): Promise<Release> {
    const deadline = Date.now() + timeoutMs;
    const me = JSON.stringify({ pid: process.pid, host: os.hostname(), at: new Date().toISOString() });
    for (let delay = 10; ; delay = Math.min(delay * 2, 250)) {
      try {
        const handle = await fs.open(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600);
        await handle.writeFile(me);
        await handle.close();
        break;
      } catch (e) {
        if (errno(e) !== 'EEXIST') throw e;
      }
      if (await this.#isAbandoned(path)) {
        await fs.rm(path, { force: true });
        continue;
      }
      if (Date.now() >= deadline) throw new LockTimeoutError(`lock held by another process: ${path}`);
      await new Promise((r) => setTimeout(r, delay));
    }
    // Refresh the lock file's mtime so waiters can tell a live holder from a dead one.
    const heartbeat = setInterval(() => void fs.utimes(path, new Date(), new Date()).catch(() => {}), LOCK_HEARTBEAT_MS);
    (heartbeat as { unref?: () => void }).unref?.();
    return async () => {
      clearInterval(heartbeat);
      // Only remove the file if it is still ours.
      if ((await fs.readFile(path, 'utf8').catch(() => '')) === me) await fs.rm(path, { force: true });
    };
  }

  async #isAbandoned(path: string): Promise<boolean> {
    try {
      const [text, s] = await Promise.all([fs.readFile(path, 'utf8'), fs.stat(path)]);
      const holder = JSON.parse(text || '{}') as { pid?: number; host?: string };
      if (holder.host === os.hostname() && typeof holder.pid === 'number' && !processAlive(holder.pid)) return true;
      return Date.now() - s.mtimeMs > LOCK_STALE_MS;
    } catch {
      return false; // vanished or half-written: look again on the next round
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errno(e) === 'EPERM';
  }
}
