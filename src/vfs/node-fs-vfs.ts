/**
 * SQLite VFS over `node:fs`, for Node and for Deno (through its Node
 * compatibility). Positioned reads and writes on file descriptors: the file is
 * never held in memory. xSync is a real fsync (fdatasync for data-only syncs),
 * and a newly created file's directory is fsynced on its first sync so the
 * file's name survives a power cut too.
 *
 * Locks are honoured between connections of one engine only: Node and Deno
 * expose no fcntl locks, so another process (native sqlite, another Node
 * process, a Deno script) writing the same file is NOT coordinated with.
 */
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import * as VFS from '@journeyapps/wa-sqlite/src/VFS.js';
import { HostIOError, HostVFS, type PathInfo } from './host-vfs.ts';

interface FdHandle {
  fd: number;
  /** Directory to fsync on first sync, set when this open created the file. */
  dirToSync: string | null;
}

const FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

function ioError(e: unknown, fallback: number): never {
  const code = (e as NodeJS.ErrnoException)?.code ?? '';
  const message = (e as Error)?.message ?? String(e);
  throw new HostIOError(message, FULL_CODES.has(code) ? VFS.SQLITE_FULL : fallback);
}

export class NodeFsVFS extends HostVFS<FdHandle> {
  protected openHandle(path: string | null, create: boolean, readonly: boolean): FdHandle | null {
    if (path === null) {
      // SQLite temp file: unlinked at once, lives as long as the descriptor.
      const tmp = nodePath.join(os.tmpdir(), `cipherkeep-${crypto.randomUUID()}.tmp`);
      const fd = fs.openSync(tmp, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
      fs.unlinkSync(tmp);
      return { fd, dirToSync: null };
    }
    const existed = fs.existsSync(path);
    if (!existed && !create) return null;
    const mode = readonly ? fs.constants.O_RDONLY : fs.constants.O_RDWR | (create ? fs.constants.O_CREAT : 0);
    // New files are owner-only: they hold encrypted data, journals and WAL frames.
    const fd = fs.openSync(path, mode, 0o600);
    return { fd, dirToSync: existed ? null : nodePath.dirname(path) };
  }

  protected closeHandle(handle: FdHandle, deleteOnClose: boolean, path: string): void {
    fs.closeSync(handle.fd);
    if (deleteOnClose) fs.rmSync(path, { force: true });
  }

  protected readAt(handle: FdHandle, into: Uint8Array, offset: number): number {
    let done = 0;
    while (done < into.length) {
      const n = fs.readSync(handle.fd, into, done, into.length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  protected writeAt(handle: FdHandle, data: Uint8Array, offset: number): void {
    try {
      let done = 0;
      while (done < data.length) {
        done += fs.writeSync(handle.fd, data, done, data.length - done, offset + done);
      }
    } catch (e) {
      ioError(e, VFS.SQLITE_IOERR_WRITE);
    }
  }

  protected truncateTo(handle: FdHandle, size: number): void {
    fs.ftruncateSync(handle.fd, size);
  }

  protected syncHandle(handle: FdHandle, dataOnly: boolean): void {
    try {
      if (dataOnly) fs.fdatasyncSync(handle.fd);
      else fs.fsyncSync(handle.fd);
      if (handle.dirToSync !== null) {
        syncDirectory(handle.dirToSync);
        handle.dirToSync = null;
      }
    } catch (e) {
      ioError(e, VFS.SQLITE_IOERR_FSYNC);
    }
  }

  protected sizeOf(handle: FdHandle): number {
    return fs.fstatSync(handle.fd).size;
  }

  deleteFile(path: string, syncDir = false): boolean {
    try {
      fs.unlinkSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
    if (syncDir) syncDirectory(nodePath.dirname(path));
    return true;
  }

  info(path: string): PathInfo {
    const parentExists = fs.existsSync(nodePath.dirname(path));
    try {
      return { size: fs.statSync(path).size, parentExists };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { size: null, parentExists };
      throw e;
    }
  }

  resolve(path: string): string {
    return nodePath.resolve(path);
  }

  readRange(path: string, offset: number, into: Uint8Array): number | null {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    try {
      return this.readAt({ fd, dirToSync: null }, into, offset);
    } finally {
      fs.closeSync(fd);
    }
  }
}

function syncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
