/**
 * A BackupTarget over a directory of any FileStore: another disk, a mounted
 * share, a second OPFS directory, memory in tests. An object is written
 * under a hidden temporary name and renamed into place, so it appears whole
 * or not at all.
 */
import { CipherkeepError, InvalidArgumentError, TargetNotFoundError } from '../engine/errors.ts';
import { fromHostError } from '../engine/error-map.ts';
import type { FileStore } from '../files/file-store.ts';
import type { BackupTarget, TargetObject } from './target.ts';
import { randomHex } from '../engine/bytes.ts';

/** Temporary names start with this; object names may not, so list never shows one. */
const STAGING = '.cipherkeep-put-';

export interface FileTargetOptions {
  /** Bytes asked of the source at once (default 4 MiB): memory stays bounded. */
  chunkBytes?: number;
  /** For results and messages (default `file:<dir>`). */
  id?: string;
  /**
   * Make the directory (0700) when it is missing. Off by default: a target
   * on a removable or network volume must not quietly become a directory on
   * the local disk because the volume is not mounted (TARGET_NOT_FOUND then).
   */
  create?: boolean;
}

function checkName(name: string): void {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\\')
    || /[\u0000-\u001f\u007f]/.test(name) || name.startsWith(STAGING) || name.length > 255) {
    throw new InvalidArgumentError(`not a valid object name: ${JSON.stringify(name)}`);
  }
}

/** A host error (errno, DOMException) as a typed one, with the target named. */
function typed(e: unknown, what: string): unknown {
  if (e instanceof CipherkeepError) return e;
  return fromHostError(e, what) ?? e;
}

export class FileTarget implements BackupTarget {
  readonly id: string;
  readonly #chunkBytes: number;
  readonly #create: boolean;

  constructor(readonly files: FileStore, readonly dir: string, options: FileTargetOptions = {}) {
    this.id = options.id ?? `file:${dir}`;
    this.#create = options.create ?? false;
    this.#chunkBytes = options.chunkBytes ?? 4 << 20;
    if (!Number.isSafeInteger(this.#chunkBytes) || this.#chunkBytes < 1) throw new InvalidArgumentError('chunkBytes must be a positive integer');
  }

  #path(name: string): string {
    checkName(name);
    return this.files.join(this.dir, name);
  }

  async list(prefix: string): Promise<TargetObject[]> {
    if (typeof prefix !== 'string' || prefix.includes('/')) throw new InvalidArgumentError(`not a valid name prefix: ${JSON.stringify(prefix)}`);
    try {
      const found = await this.files.list(this.dir, prefix);
      return found
        .filter((f) => !f.name.startsWith(STAGING))
        .map((f) => ({ name: f.name, size: f.size, mtimeMs: f.mtimeMs }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch (e) {
      throw typed(e, `${this.id}: list`);
    }
  }

  async stat(name: string): Promise<TargetObject | null> {
    const path = this.#path(name);
    try {
      const info = await this.files.stat(path);
      return info && { name, size: info.size, mtimeMs: info.mtimeMs };
    } catch (e) {
      throw typed(e, `${this.id}: stat ${name}`);
    }
  }

  async read(name: string, offset: number, length: number): Promise<Uint8Array> {
    const path = this.#path(name);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new InvalidArgumentError(`bad range ${offset}+${length}`);
    }
    if (!(await this.stat(name))) throw new TargetNotFoundError(`${this.id}: no object ${name}`);
    if (length === 0) return new Uint8Array(0);
    try {
      return await this.files.read(path, offset, length);
    } catch (e) {
      if ((e as { code?: unknown })?.code === 'ENOENT' || (e as { name?: unknown })?.name === 'NotFoundError') {
        throw new TargetNotFoundError(`${this.id}: no object ${name}`);
      }
      throw typed(e, `${this.id}: read ${name}`);
    }
  }

  async put(name: string, size: number, source: (offset: number, length: number) => Promise<Uint8Array>, onProgress?: (done: number) => void): Promise<void> {
    const path = this.#path(name);
    if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError(`bad size ${size}`);
    const staged = this.files.join(this.dir, `${STAGING}${randomHex(6)}`);
    await this.#ensureDir();
    const writer = await this.files.create(staged).catch((e) => { throw this.#missingDir(e) ?? typed(e, `${this.id}: create ${name}`); });
    try {
      for (let done = 0; done < size; ) {
        const want = Math.min(this.#chunkBytes, size - done);
        const chunk = await source(done, want);
        if (chunk.length !== want) throw new InvalidArgumentError(`the source gave ${chunk.length} bytes at ${done}, expected ${want}`);
        await writer.write(chunk);
        done += want;
        onProgress?.(done);
      }
      await writer.close();
      await this.files.restrictToOwner(staged, 'file');
      await this.files.rename(staged, path);
      if (size === 0) onProgress?.(0);
    } catch (e) {
      await writer.abort().catch(() => {});
      await this.files.remove(staged).catch(() => false);
      throw e instanceof CipherkeepError || e instanceof Error && !('code' in e) ? e : typed(e, `${this.id}: put ${name}`);
    }
  }

  async remove(name: string): Promise<boolean> {
    const path = this.#path(name);
    try {
      return await this.files.remove(path);
    } catch (e) {
      throw typed(e, `${this.id}: remove ${name}`);
    }
  }

  /** Staging files of puts that died (a process killed mid-write), older than a day. */
  async cleanup(now = new Date()): Promise<number> {
    let removed = 0;
    for (const f of await this.files.list(this.dir, STAGING).catch(() => [])) {
      if (now.getTime() - f.mtimeMs > 24 * 3600_000 && (await this.files.remove(this.files.join(this.dir, f.name)).catch(() => false))) removed++;
    }
    return removed;
  }

  /** The directory must be there (or be made, with `create`) and take a file: one is written and deleted. */
  async check(): Promise<void> {
    await this.#ensureDir();
    const probe = this.files.join(this.dir, `${STAGING}check-${Date.now().toString(36)}`);
    try {
      await (await this.files.create(probe)).abort();
    } catch (e) {
      throw this.#missingDir(e) ?? typed(e, `${this.id}: check`);
    } finally {
      await this.files.remove(probe).catch(() => false);
    }
  }

  async #ensureDir(): Promise<void> {
    if (!this.#create) return;
    try {
      if (await this.files.ensureDir(this.dir)) await this.files.restrictToOwner(this.dir, 'dir');
    } catch (e) {
      throw typed(e, `${this.id}: make the directory`);
    }
  }

  /** A file that cannot be made because the directory is missing: the target is not there. */
  #missingDir(e: unknown): TargetNotFoundError | null {
    const missing = (e as { code?: unknown })?.code === 'ENOENT' || (e as { name?: unknown })?.name === 'NotFoundError';
    return missing ? new TargetNotFoundError(`${this.id}: the directory does not exist (is the volume mounted? \`create: true\` makes it)`) : null;
  }
}
