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

export function settingsOf(l: PageIdentity): Required<CipherSettings> {
  return { pageSize: l.pageSize, hmacAlgorithm: l.hmacAlgorithm, kdfAlgorithm: l.kdfAlgorithm, kdfIterations: 1 };
}

/** What checking a page needs of its generation. */
export type PageIdentity = Pick<Logical, 'salt' | 'pageSize' | 'hmacAlgorithm' | 'kdfAlgorithm'>;

/** Checks pages of generations with one salt and settings: the HMAC at the page's number, its fingerprint, page 1's salt. */
export class PageChecker {
  private constructor(readonly salt: Uint8Array, readonly verifier: PageVerifier) {}

  static async create(key: Uint8Array, id: PageIdentity): Promise<PageChecker> {
    return new PageChecker(id.salt, await createPageVerifier(key, id.salt, settingsOf(id)));
  }

  /** null when `page` is page `pgno` with the recorded `fingerprint`; else why not. */
  problem(page: Uint8Array, pgno: number, fingerprint: Uint8Array): string | null {
    if (pgno === 1 && !bytesEqual(page.subarray(0, 16), this.salt)) return 'page 1 does not carry the generation\'s salt';
    if (!this.verifier.check(page, pgno)) return `page ${pgno} failed its HMAC check`;
    const at = this.verifier.hmacOffset;
    if (!bytesEqual(page.subarray(at, at + FINGERPRINT_BYTES), fingerprint)) {
      return `page ${pgno} is an authentic page, but not the version this generation recorded (rolled back or from another generation)`;
    }
    return null;
  }
}

/** The fingerprint a generation recorded for page `pgno`. */
export function fingerprintOf(l: Logical, pgno: number): Uint8Array {
  return l.fingerprints.subarray((pgno - 1) * FINGERPRINT_BYTES, pgno * FINGERPRINT_BYTES);
}

/** A pack that is missing or shorter than a slot a generation needs. */
export class PackReadError extends Error {
  constructor(readonly pack: string, readonly pgno: number, readonly why: string) {
    super(`pack ${pack}, holding page ${pgno}, ${why}`);
  }
}

/** Dead slots up to this many between two needed ones are read through rather than split into two reads. */
const GAP_SLOTS = 16;

/**
 * Fills `into` with pages from…to-1 (0-based) of a generation whose page i
 * lives in slot `slot[i]` of pack `names[pack[i]]`. Each pack's slots for the
 * stretch are read as few contiguous spans, one read each: a generation made
 * over many days draws each stretch from its base pack and a few pages from
 * every day's packs, and one read per page (or a small cache of windows over
 * dozens of packs) would be thousands of reads per stretch.
 */
export async function gatherPages(
  store: FileStore, dir: string, names: string[], pack: Uint32Array, slot: Uint32Array,
  from: number, to: number, pageSize: number, into: Uint8Array,
): Promise<void> {
  const wanted = new Map<number, number[]>();
  for (let i = from; i < to; i++) {
    const list = wanted.get(pack[i]!);
    if (list) list.push(slot[i]!);
    else wanted.set(pack[i]!, [slot[i]!]);
  }
  const spans = new Map<number, Array<{ first: number; last: number; bytes: Uint8Array }>>();
  for (const [p, slots] of wanted) {
    slots.sort((a, b) => a - b);
    const list: Array<{ first: number; last: number; bytes: Uint8Array }> = [];
    for (const s of slots) {
      const last = list.at(-1);
      if (last && s <= last.last + GAP_SLOTS) last.last = Math.max(last.last, s);
      else list.push({ first: s, last: s, bytes: new Uint8Array(0) });
    }
    const name = names[p]!;
    for (const span of list) {
      const length = (span.last - span.first + 1) * pageSize;
      try {
        span.bytes = await store.read(store.join(dir, name), span.first * pageSize, length);
      } catch (e) {
        const missing = (e as { code?: string }).code === 'ENOENT' || (e as { name?: string }).name === 'NotFoundError';
        throw new PackReadError(name, firstPgnoAt(pack, slot, from, to, p, span.first), missing ? 'is missing' : `cannot be read (${(e as Error).message})`);
      }
      if (span.bytes.length < length) {
        throw new PackReadError(name, firstPgnoAt(pack, slot, from, to, p, span.first + Math.floor(span.bytes.length / pageSize)), 'is cut short (truncated)');
      }
    }
    spans.set(p, list);
  }
  for (let i = from; i < to; i++) {
    const s = slot[i]!;
    const span = spans.get(pack[i]!)!.find((x) => s >= x.first && s <= x.last)!;
    const at = (s - span.first) * pageSize;
    into.set(span.bytes.subarray(at, at + pageSize), (i - from) * pageSize);
  }
}

/** The page number (1-based) of the first page in from…to-1 held in pack `p` at `slot` or later. */
function firstPgnoAt(pack: Uint32Array, slot: Uint32Array, from: number, to: number, p: number, atLeast: number): number {
  for (let i = from; i < to; i++) if (pack[i] === p && slot[i]! >= atLeast) return i + 1;
  return from + 1;
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
