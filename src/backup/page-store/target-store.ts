/**
 * The page store on a backup target (S3-compatible storage, a user-picked
 * folder, another disk): a FileStore whose paths under one directory — the
 * store's — are objects on the target, and every other path is the local
 * store's (where snapshots are read from and generations assembled to).
 *
 * A target has no directories, no rename and no partial files, only
 * whole-or-nothing puts of named objects, so:
 * - the store's directory is a name prefix (`<prefix><name>`);
 * - a file the page store creates is gathered in memory and put whole at
 *   `close()`; a temporary file (`*.tmp`, a manifest being written) is held
 *   in memory instead, read back from there, and put under its final name at
 *   the `rename` that commits it — so a manifest still appears only whole,
 *   and only after every pack it names;
 * - memory: one file at a time is gathered (the page store writes packs one
 *   after another and one manifest at a time), each at most HELD_MAX_BYTES;
 *   packs are a few MiB (4 MiB by default) and manifests smaller;
 * - listings may lag writes (Swift's container listings are updated after
 *   the write returns), so this store remembers what it put and removed and
 *   lists through that: what one run wrote it also sees listed, and a
 *   collection right after a commit never takes the new generation's packs
 *   for garbage. Across runs the service's anchor covers a lagging listing
 *   (a store that seems older than the generation last committed is refused).
 */
import { InvalidArgumentError } from '../../engine/errors.ts';
import type { FileInfo, FileStore, FileWriter, HeldLock } from '../../files/file-store.ts';
import type { BackupTarget } from '../../targets/target.ts';

/** The largest file gathered in memory before its put: packs are 4 MiB by default. */
export const HELD_MAX_BYTES = 64 << 20;

export class TargetStore implements FileStore {
  /** Temporary files: gathered, not put (a manifest waiting for its rename). */
  readonly #held = new Map<string, Uint8Array>();
  /** Objects this store put, as the listing should show them. */
  readonly #put = new Map<string, FileInfo>();
  /** Objects this store removed, which a lagging listing may still show. */
  readonly #removed = new Set<string>();

  /**
   * `mount`: for a directory path (in `local`'s form), the name prefix its
   * files have on `target`, or null when it is a local directory. See `at`.
   */
  constructor(readonly local: FileStore, readonly target: BackupTarget, readonly mount: (dir: string) => string | null) {}

  /** The page store's directory `dir` as the objects `<namePrefix><file name>` on `target`. */
  static at(local: FileStore, target: BackupTarget, dir: string, namePrefix: string): TargetStore {
    if (namePrefix.includes('/')) throw new InvalidArgumentError(`not a valid name prefix: ${JSON.stringify(namePrefix)}`);
    return new TargetStore(local, target, (d) => (d === dir ? namePrefix : null));
  }

  /** The object name for a path in a mounted directory; null for every other path (local). */
  #object(path: string): string | null {
    const prefix = this.mount(this.local.dirname(path));
    return prefix === null ? null : prefix + this.local.basename(path);
  }

  #isDir(path: string): boolean {
    return this.mount(path) !== null;
  }

  join(dir: string, name: string): string {
    return this.local.join(dir, name);
  }

  dirname(path: string): string {
    return this.local.dirname(path);
  }

  basename(path: string): string {
    return this.local.basename(path);
  }

  async list(dir: string, prefix: string, onSkip?: (name: string, why: string) => void): Promise<FileInfo[]> {
    const mounted = this.mount(dir);
    if (mounted === null) return this.local.list(dir, prefix, onSkip);
    const full = mounted + prefix;
    const seen = new Map<string, FileInfo>();
    for (const o of await this.target.list(full)) {
      if (!this.#removed.has(o.name)) seen.set(o.name, { name: o.name.slice(mounted.length), size: o.size, mtimeMs: o.mtimeMs });
    }
    for (const [name, info] of this.#put) if (name.startsWith(full) && !seen.has(name)) seen.set(name, { ...info, name: name.slice(mounted.length) });
    return [...seen.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(path: string): Promise<FileInfo | null> {
    const name = this.#object(path);
    if (name === null) return this.#isDir(path) ? null : this.local.stat(path);
    const held = this.#held.get(name);
    if (held) return { name: this.basename(path), size: held.length, mtimeMs: Date.now() };
    const o = await this.target.stat(name);
    return o && { name: this.basename(path), size: o.size, mtimeMs: o.mtimeMs };
  }

  async read(path: string, offset: number, length: number): Promise<Uint8Array> {
    const name = this.#object(path);
    if (name === null) return this.local.read(path, offset, length);
    const held = this.#held.get(name);
    if (held) return held.slice(Math.min(offset, held.length), Math.min(offset + length, held.length));
    return this.target.read(name, offset, length);
  }

  async readInto(path: string, offset: number, into: Uint8Array): Promise<number> {
    if (this.#object(path) === null && this.local.readInto) return this.local.readInto(path, offset, into);
    const bytes = await this.read(path, offset, into.length);
    into.set(bytes);
    return bytes.length;
  }

  async create(path: string): Promise<FileWriter> {
    const name = this.#object(path);
    if (name === null) return this.local.create(path);
    if (this.#held.has(name)) throw new InvalidArgumentError(`${this.target.id}: ${name} is being written already`);
    const chunks: Uint8Array[] = [];
    let size = 0;
    let open = true;
    return {
      write: async (chunk) => {
        if (!open) throw new InvalidArgumentError(`${this.target.id}: ${name} is closed`);
        size += chunk.length;
        if (size > HELD_MAX_BYTES) throw new InvalidArgumentError(`${this.target.id}: ${name} would exceed ${HELD_MAX_BYTES} bytes, more than a page store file is gathered in memory`);
        chunks.push(chunk.slice());
      },
      close: async () => {
        if (!open) return;
        open = false;
        const bytes = concat(chunks, size);
        chunks.length = 0;
        if (name.endsWith('.tmp')) this.#held.set(name, bytes);
        else await this.#putBytes(name, bytes);
      },
      abort: async () => {
        open = false;
        chunks.length = 0;
      },
    };
  }

  async #putBytes(name: string, bytes: Uint8Array): Promise<void> {
    await this.target.put(name, bytes.length, async (offset, length) => bytes.subarray(offset, offset + length));
    this.#removed.delete(name);
    this.#put.set(name, { name, size: bytes.length, mtimeMs: Date.now() });
  }

  /** The commit: a held file goes up whole under its final name. */
  async rename(from: string, to: string): Promise<void> {
    const a = this.#object(from);
    const b = this.#object(to);
    if (a === null && b === null) return this.local.rename(from, to);
    if (a === null || b === null) throw new InvalidArgumentError(`cannot move ${this.basename(from)} between ${this.target.id} and local storage`);
    const held = this.#held.get(a);
    if (held) {
      await this.#putBytes(b, held);
      this.#held.delete(a);
      return;
    }
    // Not used by the page store (only held manifests are renamed); a copy, then the old name goes.
    const info = await this.target.stat(a);
    if (!info) throw new InvalidArgumentError(`${this.target.id}: no object ${a} to rename`);
    await this.target.put(b, info.size, (offset, length) => this.target.read(a, offset, length));
    this.#put.set(b, { name: b, size: info.size, mtimeMs: Date.now() });
    await this.remove(from);
  }

  async remove(path: string): Promise<boolean> {
    const name = this.#object(path);
    if (name === null) return this.local.remove(path);
    if (this.#held.delete(name)) return true;
    const removed = await this.target.remove(name);
    this.#put.delete(name);
    this.#removed.add(name);
    return removed;
  }

  /** The store's directory is a name prefix: nothing to create. */
  async ensureDir(path: string): Promise<boolean> {
    return this.#isDir(path) ? false : this.local.ensureDir(path);
  }

  async freeSpace(dir: string): Promise<number> {
    return this.#isDir(dir) ? Number.MAX_SAFE_INTEGER : this.local.freeSpace(dir);
  }

  async restrictToOwner(path: string, kind: 'file' | 'dir'): Promise<void> {
    if (this.#object(path) === null && !this.#isDir(path)) await this.local.restrictToOwner(path, kind);
  }

  lock(path: string, timeoutMs: number, staleMs?: number): Promise<HeldLock> {
    return this.local.lock(path, timeoutMs, staleMs);
  }
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
