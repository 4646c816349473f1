/**
 * Writing packs: pages are gathered in memory up to the pack size and each
 * pack is written in one piece (one object on a bucket, one sequential write
 * on a disk), made durable, read back and compared before anything refers
 * to it. A pack is garbage until a committed manifest names it.
 */
import { CorruptDatabaseError } from '../../engine/errors.ts';
import { readInto, type FileStore } from '../../files/file-store.ts';
import { newPackName } from './format.ts';
import { bytesEqual } from '../../engine/bytes.ts';

export const DEFAULT_PACK_BYTES = 4 << 20;
const READ_BACK_BYTES = 1 << 20;

export interface WrittenPack {
  name: string;
  /** The page number of each slot. */
  pgnos: number[];
  bytes: number;
}

export class PackWriter {
  readonly written: WrittenPack[] = [];
  /** Two buffers: one fills while the other's pack is written, made durable and read back. */
  readonly #buffers: [Uint8Array, Uint8Array];
  readonly #slotsPerPack: number;
  #slots = 0;
  #pgnos: number[] = [];
  #name: string | null = null;
  /** The pack being written from the other buffer (it never rejects: its failure waits in #failed). */
  #flushing: Promise<void> = Promise.resolve();
  #failed: { error: unknown } | null = null;
  readonly #readBack = new Uint8Array(READ_BACK_BYTES);

  constructor(
    readonly store: FileStore,
    readonly dir: string,
    readonly token: string,
    readonly pageSize: number,
    packBytes = DEFAULT_PACK_BYTES,
  ) {
    this.#slotsPerPack = Math.max(1, Math.floor(packBytes / pageSize));
    this.#buffers = [new Uint8Array(this.#slotsPerPack * pageSize), new Uint8Array(this.#slotsPerPack * pageSize)];
  }

  /** Total bytes of the packs written so far. */
  get bytesWritten(): number {
    return this.written.reduce((s, p) => s + p.bytes, 0);
  }

  /**
   * Adds whole pages (`pages` holds pages firstPgno, firstPgno+1, …) and
   * tells `placed` where each one went. `pages` may be reused once this
   * resolves. A full pack is written while the next one fills; a failure to
   * write it is thrown by a later add, or by finish.
   */
  async add(pages: Uint8Array, firstPgno: number, placed: (pgno: number, pack: string, slot: number) => void): Promise<void> {
    const count = pages.length / this.pageSize;
    for (let i = 0; i < count; ) {
      this.#name ??= newPackName(this.token);
      const n = Math.min(count - i, this.#slotsPerPack - this.#slots);
      this.#buffers[0].set(pages.subarray(i * this.pageSize, (i + n) * this.pageSize), this.#slots * this.pageSize);
      for (let k = 0; k < n; k++) {
        placed(firstPgno + i + k, this.#name, this.#slots + k);
        this.#pgnos.push(firstPgno + i + k);
      }
      this.#slots += n;
      i += n;
      if (this.#slots === this.#slotsPerPack) await this.#startFlush();
    }
  }

  /** Writes the last, partly filled pack, and waits until every pack is durable and read back. */
  async finish(): Promise<void> {
    if (this.#slots > 0) await this.#startFlush();
    await this.#settled();
  }

  /** Removes every pack this writer wrote (a run that failed before its manifest was committed). */
  async discard(): Promise<void> {
    await this.#flushing;
    for (const p of this.written) await this.store.remove(this.store.join(this.dir, p.name)).catch(() => false);
  }

  /** Waits for the pack being written (its buffer is the next to fill), then starts writing the one just filled. */
  async #startFlush(): Promise<void> {
    await this.#settled();
    const pack = { name: this.#name!, pgnos: this.#pgnos, bytes: this.#buffers[0].subarray(0, this.#slots * this.pageSize) };
    this.#buffers.reverse();
    this.#pgnos = [];
    this.#slots = 0;
    this.#name = null;
    this.#flushing = this.#write(pack.name, pack.bytes).then(
      () => void this.written.push({ name: pack.name, pgnos: pack.pgnos, bytes: pack.bytes.length }),
      (error: unknown) => void (this.#failed = { error }),
    );
  }

  async #settled(): Promise<void> {
    await this.#flushing;
    if (this.#failed) throw this.#failed.error;
  }

  async #write(name: string, bytes: Uint8Array): Promise<void> {
    const path = this.store.join(this.dir, name);
    const writer = await this.store.create(path);
    try {
      await writer.write(bytes);
      await writer.close();
    } catch (e) {
      await writer.abort().catch(() => {});
      throw e;
    }
    // What the store holds must be what was checked: compare it (in pieces, into one buffer: no garbage) before any
    // manifest names it.
    const size = (await this.store.stat(path))?.size;
    for (let at = 0, got = 0; at < bytes.length && size === bytes.length; at += got) {
      const piece = this.#readBack.subarray(0, Math.min(READ_BACK_BYTES, bytes.length - at));
      const back = piece.subarray(0, (got = await readInto(this.store, path, at, piece)));
      if (!bytesEqual(back, bytes.subarray(at, at + back.length)) || back.length === 0) {
        await this.store.remove(path).catch(() => false);
        throw new CorruptDatabaseError(`pack ${name} read back different from what was written (at byte ${at})`);
      }
    }
    if (size !== bytes.length) {
      await this.store.remove(path).catch(() => false);
      throw new CorruptDatabaseError(`pack ${name} holds ${size ?? 'no'} bytes after writing ${bytes.length}`);
    }
  }
}
