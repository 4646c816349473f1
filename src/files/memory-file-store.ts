/**
 * FileStore over the in-memory VFS's files, so databases opened through
 * MemoryVFS and backups written here are the same bytes. For tests: it can
 * also pretend the disk is small (`capacityBytes`) to provoke full-disk paths.
 */
import { StorageFullError } from '../engine/errors.ts';
import type { MemoryVFS } from '../vfs/memory-vfs.ts';
import { platformLock, type FileInfo, type FileStore, type FileWriter, type HeldLock } from './file-store.ts';
import { KeyedMutex } from './keyed-mutex.ts';

export class MemoryFileStore implements FileStore {
  readonly #dirs = new Set<string>(['/']);
  readonly #mtimes = new Map<string, number>();
  readonly #locks = new KeyedMutex();
  /** Total bytes the store may hold; writes beyond it fail with StorageFullError. */
  capacityBytes = Number.MAX_SAFE_INTEGER;
  /** When set, freeSpace() throws this (a host that cannot report free space). */
  freeSpaceError: Error | null = null;

  constructor(readonly vfs: MemoryVFS) {}

  join = (dir: string, name: string) => this.vfs.resolve(`${dir}/${name}`.replace(/\/+/g, '/'));
  dirname = (path: string) => this.vfs.resolve(path).replace(/\/[^/]*$/, '') || '/';
  basename = (path: string) => path.replace(/^.*\//, '');

  async list(dir: string, prefix: string): Promise<FileInfo[]> {
    const base = this.vfs.resolve(dir);
    const out: FileInfo[] = [];
    for (const path of this.vfs.files.keys()) {
      if (this.dirname(path) === base && this.basename(path).startsWith(prefix)) out.push(this.#info(path));
    }
    return out;
  }

  async stat(path: string): Promise<FileInfo | null> {
    return this.vfs.files.has(this.vfs.resolve(path)) ? this.#info(this.vfs.resolve(path)) : null;
  }

  async read(path: string, offset: number, length: number): Promise<Uint8Array> {
    const file = this.vfs.files.get(this.vfs.resolve(path));
    if (!file) throw Object.assign(new Error(`no such file: ${path}`), { code: 'ENOENT' });
    return file.data.slice(offset, Math.min(file.size, offset + length));
  }

  async readInto(path: string, offset: number, into: Uint8Array): Promise<number> {
    const file = this.vfs.files.get(this.vfs.resolve(path));
    if (!file) throw Object.assign(new Error(`no such file: ${path}`), { code: 'ENOENT' });
    const bytes = file.data.subarray(Math.min(offset, file.size), Math.min(file.size, offset + into.length));
    into.set(bytes);
    return bytes.length;
  }

  async create(path: string): Promise<FileWriter> {
    const full = this.vfs.resolve(path);
    if (this.vfs.files.has(full)) throw Object.assign(new Error(`file exists: ${path}`), { code: 'EEXIST' });
    if (!this.#dirs.has(this.dirname(full))) throw Object.assign(new Error(`no such directory: ${path}`), { code: 'ENOENT' });
    const file = { data: new Uint8Array(0), size: 0 };
    this.vfs.files.set(full, file);
    this.#mtimes.set(full, Date.now());
    return {
      write: async (chunk) => {
        if (this.#used() + chunk.length > this.capacityBytes) throw new StorageFullError(`storage full while writing ${path}`);
        const grown = new Uint8Array(file.size + chunk.length);
        grown.set(file.data.subarray(0, file.size));
        grown.set(chunk, file.size);
        file.data = grown;
        file.size = grown.length;
        this.#mtimes.set(full, Date.now());
      },
      close: async () => {},
      abort: async () => {
        this.vfs.files.delete(full);
      },
    };
  }

  async rename(from: string, to: string): Promise<void> {
    const source = this.vfs.resolve(from);
    const file = this.vfs.files.get(source);
    if (!file) throw Object.assign(new Error(`no such file: ${from}`), { code: 'ENOENT' });
    this.vfs.files.delete(source);
    this.vfs.files.set(this.vfs.resolve(to), file);
    this.#mtimes.set(this.vfs.resolve(to), this.#mtimes.get(source) ?? Date.now());
  }

  async remove(path: string): Promise<boolean> {
    return this.vfs.files.delete(this.vfs.resolve(path));
  }

  async ensureDir(path: string): Promise<boolean> {
    const created = !this.#dirs.has(this.vfs.resolve(path));
    for (let dir = this.vfs.resolve(path); dir !== '/'; dir = this.dirname(dir)) this.#dirs.add(dir);
    return created;
  }

  async freeSpace(): Promise<number> {
    if (this.freeSpaceError) throw this.freeSpaceError;
    return Math.max(0, this.capacityBytes - this.#used());
  }

  async restrictToOwner(): Promise<void> {}

  async lock(path: string, timeoutMs: number): Promise<HeldLock> {
    return platformLock(await this.#locks.acquire(this.vfs.resolve(path), timeoutMs));
  }

  async inUse(path: string): Promise<string | null> {
    return this.vfs.isOpen(path) ? 'a connection of this engine has it open' : null;
  }

  /** Sets a file's modification time (tests of age rules). */
  touch(path: string, mtimeMs: number): void {
    this.#mtimes.set(this.vfs.resolve(path), mtimeMs);
  }

  #info(path: string): FileInfo {
    return { name: this.basename(path), size: this.vfs.files.get(path)?.size ?? 0, mtimeMs: this.#mtimes.get(path) ?? 0 };
  }

  #used(): number {
    let n = 0;
    for (const f of this.vfs.files.values()) n += f.size;
    return n;
  }
}
