/**
 * A BackupTarget over a folder of the File System Access API: a
 * `FileSystemDirectoryHandle`, typically one the user picked with
 * `showDirectoryPicker()` (a folder on their disk, a USB stick, a synced
 * folder), or any directory in OPFS. Works in pages and workers; the handle
 * is structured-cloneable, so a page may post it to the worker.
 *
 * Whole or nothing: a put writes a hidden temporary file through
 * `createWritable()` (Chromium itself writes a `.crswap` swap file and swaps
 * it in on `close()`), then renames it to its name with the file handle's
 * `move()` in the same folder — a rename on the user's disk. A put that fails
 * removes its temporary file; a tab closed mid-put leaves one, hidden from
 * `list` and swept after a day. Where `move()` is missing (Chromium before
 * 110 for OPFS, before 122 for user folders) the file is written under its
 * name directly: its content still appears whole (the swap file); a failure
 * removes the empty file it created, once the aborted writer lets go of it,
 * and never a file that was there before the put.
 */
import {
  InvalidArgumentError, StorageFullError, TargetDeniedError, TargetNotFoundError, TargetUnreachableError, type CipherkeepError,
} from '../engine/errors.ts';
import type { BackupTarget, TargetObject } from './target.ts';

/** Hidden temporary files: never a backup's name, never listed. */
const TMP = '.cipherkeep-partial-';
/** Chromium's own swap files beside a file being written. */
const SWAP = '.crswap';
const CHUNK = 4 << 20;
const STALE_MS = 24 * 3600_000;

type Permissioned = FileSystemHandle & {
  queryPermission?(d: { mode: 'readwrite' }): Promise<PermissionState>;
  requestPermission?(d: { mode: 'readwrite' }): Promise<PermissionState>;
  move?(dir: FileSystemDirectoryHandle, name: string): Promise<void>;
};
type Entries = AsyncIterable<[string, FileSystemHandle]>;

/** Wraps the source's own failure on its way out of put(): it is passed on as it is, not as the folder's. */
class SourceFailure {
  constructor(readonly error: unknown) {}
}

const nameOf = (e: unknown) => (e as DOMException | undefined)?.name;

/** Names are single path segments the folder can hold, and never one of our temporaries. */
function checkName(name: string): void {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || /[/\\\u0000-\u001f\u007f]/.test(name)
    || name.length > 255 || name.startsWith(TMP) || name.endsWith(SWAP)) {
    throw new InvalidArgumentError(`not a valid object name: ${JSON.stringify(name)}`);
  }
}

/** Whether the page must ask again (`requestPermission` on a user gesture) before backups can go to `dir`. */
export async function folderPermission(dir: FileSystemDirectoryHandle): Promise<PermissionState> {
  const query = (dir as Permissioned).queryPermission;
  return query ? query.call(dir, { mode: 'readwrite' }) : 'granted';
}

export class FolderTarget implements BackupTarget {
  readonly id: string;

  readonly #chunkBytes: number;

  /** `chunkBytes`: how much of the source a put asks for at once (bounded memory); default 4 MiB. */
  constructor(readonly dir: FileSystemDirectoryHandle, options: { chunkBytes?: number } = {}) {
    this.id = `folder:${dir.name}`;
    this.#chunkBytes = options.chunkBytes ?? CHUNK;
  }

  /** The browser's DOMExceptions as the target errors every BackupTarget throws. */
  #fail(what: string, e: unknown): CipherkeepError | unknown {
    const name = nameOf(e);
    if (name === 'NotAllowedError' || name === 'SecurityError') {
      return new TargetDeniedError(`${this.id}: ${what}: permission needed (ask again from a user gesture: requestPermission)`, { cause: e });
    }
    if (name === 'NotFoundError') return new TargetNotFoundError(`${this.id}: ${what}: not found`, { cause: e });
    if (name === 'QuotaExceededError') return new StorageFullError(`${this.id}: ${what}: the disk or quota is full`, { cause: e });
    if (e instanceof DOMException) return new TargetUnreachableError(`${this.id}: ${what}: ${e.name}: ${e.message}`, { cause: e });
    return e;
  }

  /** Fails fast, with the state the page can act on, when the browser has dropped the permission. */
  async #granted(what: string): Promise<void> {
    const state = await folderPermission(this.dir).catch((e) => { throw this.#fail(what, e); });
    if (state !== 'granted') {
      throw new TargetDeniedError(`${this.id}: ${what}: permission needed (${state}): backups to this folder are paused until the page asks again from a user gesture`);
    }
  }

  async #file(name: string, what: string): Promise<FileSystemFileHandle | null> {
    try {
      return await this.dir.getFileHandle(name);
    } catch (e) {
      if (nameOf(e) === 'NotFoundError' || nameOf(e) === 'TypeMismatchError') return null;
      throw this.#fail(what, e);
    }
  }

  async list(prefix: string): Promise<TargetObject[]> {
    if (typeof prefix !== 'string' || /[/\\]/.test(prefix)) throw new InvalidArgumentError(`not a valid name prefix: ${JSON.stringify(prefix)}`);
    await this.#granted('list');
    const out: TargetObject[] = [];
    try {
      for await (const [name, entry] of this.dir as unknown as Entries) {
        if (entry.kind !== 'file' || !name.startsWith(prefix) || name.startsWith(TMP) || name.endsWith(SWAP)) continue;
        const file = await (entry as FileSystemFileHandle).getFile().catch((e) => {
          if (nameOf(e) === 'NotFoundError') return null; // removed while we listed
          throw e;
        });
        if (file) out.push({ name, size: file.size, mtimeMs: file.lastModified });
      }
    } catch (e) {
      throw this.#fail('list', e);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(name: string): Promise<TargetObject | null> {
    checkName(name);
    await this.#granted(`stat ${name}`);
    const handle = await this.#file(name, `stat ${name}`);
    if (!handle) return null;
    try {
      const file = await handle.getFile();
      return { name, size: file.size, mtimeMs: file.lastModified };
    } catch (e) {
      if (nameOf(e) === 'NotFoundError') return null;
      throw this.#fail(`stat ${name}`, e);
    }
  }

  async read(name: string, offset: number, length: number): Promise<Uint8Array> {
    checkName(name);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new InvalidArgumentError(`bad range ${offset}+${length}`);
    }
    await this.#granted(`read ${name}`);
    const handle = await this.#file(name, `read ${name}`);
    if (!handle) throw new TargetNotFoundError(`${this.id}: read ${name}: not found`);
    try {
      // A slice of the File reads only those bytes from disk.
      return new Uint8Array(await (await handle.getFile()).slice(offset, offset + length).arrayBuffer());
    } catch (e) {
      throw this.#fail(`read ${name}`, e);
    }
  }

  async put(name: string, size: number, source: (offset: number, length: number) => Promise<Uint8Array>, onProgress?: (done: number) => void): Promise<void> {
    checkName(name);
    if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError(`bad size ${size}`);
    await this.#granted(`put ${name}`);
    await this.#sweep();
    const canMove = typeof (globalThis.FileSystemFileHandle?.prototype as Permissioned | undefined)?.move === 'function';
    const written = canMove ? `${TMP}${crypto.randomUUID()}` : name;
    // Written under its name: an older file there is kept if the put fails, not removed.
    const existed = !canMove && (await this.#file(name, `put ${name}`)) !== null;
    let handle: FileSystemFileHandle | null = null;
    let writable: FileSystemWritableFileStream | null = null;
    try {
      handle = await this.dir.getFileHandle(written, { create: true });
      writable = await handle.createWritable();
      for (let offset = 0; offset < size; ) {
        const length = Math.min(this.#chunkBytes, size - offset);
        const chunk = await source(offset, length).catch((e: unknown) => { throw new SourceFailure(e); });
        if (!(chunk instanceof Uint8Array) || chunk.length !== length) {
          throw new InvalidArgumentError(`the source gave ${chunk?.length} bytes at ${offset}, expected ${length}`);
        }
        await writable.write(chunk as Uint8Array<ArrayBuffer>);
        offset += length;
        onProgress?.(offset);
      }
      await writable.close(); // swaps the written bytes in whole
      writable = null;
      if (canMove) await (handle as Permissioned).move!(this.dir, name); // replaces an older file of that name
      if (size === 0) onProgress?.(0);
    } catch (e) {
      await writable?.abort().catch(() => {});
      if (handle && !existed) await this.#removeOnceReleased(written);
      if (e instanceof SourceFailure) throw e.error;
      throw e instanceof DOMException ? this.#fail(`put ${name}`, e) : e;
    }
  }

  /** An aborted writer lets go of its file a moment after abort() resolves: until then removing it fails. */
  async #removeOnceReleased(name: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.dir.removeEntry(name);
      } catch (e) {
        // Given up after a second: a hidden temporary file is swept after a day; an empty one under the name stays.
        if (nameOf(e) !== 'NoModificationAllowedError' || attempt === 50) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  async remove(name: string): Promise<boolean> {
    checkName(name);
    await this.#granted(`remove ${name}`);
    try {
      await this.dir.removeEntry(name);
      return true;
    } catch (e) {
      if (nameOf(e) === 'NotFoundError') return false;
      throw this.#fail(`remove ${name}`, e);
    }
  }

  /** The folder is still there and writable by this page. */
  async check(): Promise<void> {
    await this.#granted('check');
    try {
      for await (const _ of this.dir as unknown as Entries) break;
    } catch (e) {
      throw this.#fail('check', e);
    }
  }

  /** Removes temporary files a closed tab left mid-put (older than a day, so never a put still running). */
  async #sweep(now = Date.now()): Promise<void> {
    const stale: string[] = [];
    try {
      for await (const [name, entry] of this.dir as unknown as Entries) {
        if (entry.kind !== 'file' || !name.startsWith(TMP)) continue;
        const file = await (entry as FileSystemFileHandle).getFile().catch(() => null);
        if (file && now - file.lastModified > STALE_MS) stale.push(name);
      }
      for (const name of stale) await this.dir.removeEntry(name).catch(() => {});
    } catch (e) {
      throw this.#fail('sweep', e);
    }
  }
}
