/**
 * Pages as the page store sees them: where a page's HMAC sits (its first 16
 * bytes are the page's fingerprint), checking a page at its number, and
 * reading pages back out of packs in few, large reads.
 */
import type { CipherSettings } from '../../engine/cipher.ts';
import type { FileStore } from '../../files/file-store.ts';
import { createPageVerifier, type PageVerifier } from '../page-check.ts';
import { bytesEqual, FINGERPRINT_BYTES, type Logical } from './format.ts';

const IV_BYTES = 16;

export interface PageStoreProgress {
  phase: 'scan' | 'commit' | 'cleanup' | 'restore' | 'verify';
  bytesDone: number;
  bytesTotal: number;
}
/** Progress callback; a returned promise is awaited before the next chunk. */
export type OnPageStoreProgress = (p: PageStoreProgress) => void | Promise<void>;

/** Offset in a page of its HMAC: after the ciphertext and the 16-byte IV, in the reserve SQLCipher 4 keeps at the end. */
export function hmacOffset(settings: Required<CipherSettings>): number {
  return settings.pageSize - (IV_BYTES + (settings.hmacAlgorithm === 'SHA512' ? 64 : 32)) + IV_BYTES;
}

export function settingsOf(l: Logical): Required<CipherSettings> {
  return { pageSize: l.pageSize, hmacAlgorithm: l.hmacAlgorithm, kdfAlgorithm: l.kdfAlgorithm, kdfIterations: 1 };
}

/** Checks pages of one generation: its HMAC at its number, its fingerprint, and page 1's salt. */
export class GenerationChecker {
  private constructor(readonly logical: Logical, readonly verifier: PageVerifier) {}

  static async create(key: Uint8Array, logical: Logical): Promise<GenerationChecker> {
    return new GenerationChecker(logical, await createPageVerifier(key, logical.salt, settingsOf(logical)));
  }

  /** null when the page is the one the manifest recorded; else why not. */
  problem(page: Uint8Array, pgno: number): string | null {
    const l = this.logical;
    if (pgno === 1 && !bytesEqual(page.subarray(0, 16), l.salt)) return 'page 1 does not carry the generation\'s salt';
    if (!this.verifier.check(page, pgno)) return `page ${pgno} failed its HMAC check`;
    const at = this.verifier.hmacOffset;
    if (!bytesEqual(page.subarray(at, at + FINGERPRINT_BYTES), l.fingerprints.subarray((pgno - 1) * FINGERPRINT_BYTES, pgno * FINGERPRINT_BYTES))) {
      return `page ${pgno} is an authentic page, but not the version this generation recorded (rolled back or from another generation)`;
    }
    return null;
  }
}

/**
 * Reads pack slots through a small cache of aligned windows (a few MiB in
 * all), so that assembling a generation from many packs costs a few large
 * reads per pack instead of one per page: pages of one pack are laid out in
 * page order, and a generation is read in page order.
 */
export class PackReader {
  readonly #windows = new Map<string, { start: number; bytes: Uint8Array }>();
  constructor(
    readonly store: FileStore,
    readonly dir: string,
    readonly windowBytes = 1 << 20,
    readonly maxWindows = 16,
  ) {}

  /** Copies `count` pages from `pack` starting at `slot` into `into` (count × pageSize bytes). Throws when the pack is missing or short. */
  async copy(pack: string, slot: number, count: number, pageSize: number, into: Uint8Array): Promise<void> {
    let done = 0;
    const total = count * pageSize;
    while (done < total) {
      const offset = slot * pageSize + done;
      const w = await this.#window(pack, offset);
      const from = offset - w.start;
      const n = Math.min(total - done, w.bytes.length - from);
      if (n <= 0) throw Object.assign(new Error(`pack ${pack} ends before slot ${Math.floor(offset / pageSize)} (truncated)`), { code: 'SHORT_PACK' });
      into.set(w.bytes.subarray(from, from + n), done);
      done += n;
    }
  }

  async #window(pack: string, offset: number): Promise<{ start: number; bytes: Uint8Array }> {
    const start = offset - (offset % this.windowBytes);
    const key = `${pack}@${start}`;
    const hit = this.#windows.get(key);
    if (hit) {
      this.#windows.delete(key);
      this.#windows.set(key, hit); // most recently used last
      return hit;
    }
    const w = { start, bytes: await this.store.read(this.store.join(this.dir, pack), start, this.windowBytes) };
    this.#windows.set(key, w);
    if (this.#windows.size > this.maxWindows) this.#windows.delete(this.#windows.keys().next().value!);
    return w;
  }
}

/**
 * Yields to the event loop through a MessageChannel (setTimeout(0) is
 * clamped to 4 ms once nested in browsers and Deno), so long loops never hold
 * their thread for more than one chunk.
 */
export function yielder(): { next(): Promise<void>; close(): void } {
  const { port1, port2 } = new MessageChannel();
  let wake = () => {};
  port1.onmessage = () => wake();
  return {
    next: () => new Promise<void>((resolve) => {
      wake = resolve;
      port2.postMessage(null);
    }),
    close: () => port1.close(),
  };
}
