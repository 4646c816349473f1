/**
 * Pages as the page store sees them: where a page's HMAC sits (its first 16
 * bytes are the page's fingerprint), checking a page at its number, and
 * reading pages back out of packs in few, large reads.
 */
import { SQLCIPHER4_DEFAULTS, type CipherSettings } from '../../engine/cipher.ts';
import type { FileStore } from '../../files/file-store.ts';
import { createPageVerifier, type PageMacs, type PageVerifier } from '../page-check.ts';
import { FINGERPRINT_BYTES, type Logical } from './format.ts';
import { bytesEqual } from '../../engine/bytes.ts';

/**
 * A backup reads the snapshot whole ('scan'), then checks and packs its new
 * pages ('verify': `bytesTotal` is theirs), commits and cleans up; a restore
 * assembles ('restore'); a verify checks pages ('verify').
 */
export interface PageStoreProgress {
  phase: 'scan' | 'commit' | 'cleanup' | 'restore' | 'verify';
  bytesDone: number;
  bytesTotal: number;
}
/** Progress callback; a returned promise is awaited before the next chunk. */
export type OnPageStoreProgress = (p: PageStoreProgress) => void | Promise<void>;

export function settingsOf(l: PageIdentity): Required<CipherSettings> {
  return { ...SQLCIPHER4_DEFAULTS, pageSize: l.pageSize, hmacAlgorithm: l.hmacAlgorithm, kdfAlgorithm: l.kdfAlgorithm, kdfIterations: 1, allowWeakKdf: true };
}

/** What checking a page needs of its generation. */
export type PageIdentity = Pick<Logical, 'salt' | 'pageSize' | 'hmacAlgorithm' | 'kdfAlgorithm'>;

/** Checks pages of generations with one salt and settings: the HMAC at the page's number, its fingerprint, page 1's salt. */
export class PageChecker {
  private constructor(readonly salt: Uint8Array, readonly verifier: PageVerifier) {}

  static async create(key: Uint8Array, id: PageIdentity, macs?: PageMacs): Promise<PageChecker> {
    return new PageChecker(id.salt, await createPageVerifier(key, id.salt, settingsOf(id), macs));
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
/** What all read-ahead windows together may hold, about. */
const AHEAD_BUDGET_BYTES = 16 << 20;
const MAX_WINDOW_BYTES = 1 << 20;
/** The stretch a generation is assembled by (restore.ts reads 4 MiB at a time). */
export const STRETCH_BYTES = 4 << 20;
/** A window unused for this many stretches is dropped. */
const AHEAD_IDLE_STRETCHES = 4;
const WINDOWS_PER_PACK = 4;

/**
 * Assembles a generation stretch by stretch (page i lives in slot `slot[i]`
 * of pack `names[pack[i]]`). Each pack's slots for a stretch are read as few
 * contiguous spans; small spans read ahead (up to 1 MiB) and keep the
 * window for the next stretches. A generation made over many days draws
 * each stretch from its base pack plus a few pages from every day's pack,
 * and those are laid out in page order: without the windows that is one
 * read per day's pack per stretch — thousands of small reads.
 */
interface Window {
  first: number;
  /** Slots it holds (until read: that it asked for). */
  slots: number;
  bytes: Uint8Array;
  /** The stretch that last used it. */
  used: number;
  /** Kept for later stretches, in a buffer of the pool. */
  kept: boolean;
}


export class PageGatherer {
  /** Per pack, a few windows (a repacked pack holds several runs of pages in page order, read side by side). */
  readonly #windows = new Map<number, Window[]>();
  readonly #aheadSlots: number;
  /** The store's readInto, when it has one: then no read allocates (at 500 MB, a new buffer per read is hundreds of MB of garbage the runtime lets pile up). */
  readonly #readInto: NonNullable<FileStore['readInto']> | null;
  /** Window-sized buffers of dropped windows, for the next ones (when the store reads into buffers). */
  readonly #pool: Uint8Array[] = [];
  /** Where spans read once go, reused stretch after stretch (when the store reads into buffers). */
  #arena = new Uint8Array(0);
  #stretch = 0;

  constructor(
    readonly store: FileStore, readonly dir: string, readonly names: string[],
    readonly pack: Uint32Array, readonly slot: Uint32Array, readonly pageSize: number,
  ) {
    // Packs that feed many stretches (a day's changes, spread over the whole file) keep a window each, side by side: share the budget among them.
    const stretchPages = Math.max(1, Math.floor(STRETCH_BYTES / pageSize));
    const lastStretch = new Int32Array(names.length).fill(-1);
    const stretches = new Uint32Array(names.length);
    for (let i = 0; i < pack.length; i++) {
      const p = pack[i]!;
      const s = Math.floor(i / stretchPages);
      if (lastStretch[p] !== s) {
        lastStretch[p] = s;
        stretches[p]!++;
      }
    }
    const spread = stretches.reduce((n, k) => n + (k > 2 ? 1 : 0), 0);
    const perPack = Math.min(MAX_WINDOW_BYTES, Math.floor(AHEAD_BUDGET_BYTES / Math.max(1, spread * WINDOWS_PER_PACK / 2)));
    this.#aheadSlots = Math.max(GAP_SLOTS, Math.floor(perPack / pageSize));
    this.#readInto = typeof store.readInto === 'function' ? store.readInto.bind(store) : null;
  }

  /** Fills `into` with pages from…to-1 (0-based). Throws PackReadError for a missing or short pack. */
  async gather(from: number, to: number, into: Uint8Array): Promise<void> {
    const { pack, slot, pageSize } = this;
    const stretch = ++this.#stretch;
    const wanted = new Map<number, number[]>();
    for (let i = from; i < to; i++) {
      const list = wanted.get(pack[i]!);
      if (list) list.push(slot[i]!);
      else wanted.set(pack[i]!, [slot[i]!]);
    }
    // Plan: each span is covered by a kept window or a new read; all reads of the stretch then go out at once.
    const spans = new Map<number, Array<{ first: number; last: number; window: Window }>>();
    const fresh: Array<{ p: number; window: Window }> = [];
    const dropped: Window[] = [];
    for (const [p, slots] of wanted) {
      slots.sort((a, b) => a - b);
      const list: Array<{ first: number; last: number; window: Window }> = [];
      for (const s of slots) {
        const last = list.at(-1);
        if (last && s <= last.last + GAP_SLOTS) last.last = Math.max(last.last, s);
        else list.push({ first: s, last: s, window: null! });
      }
      const kept = this.#windows.get(p) ?? [];
      for (const span of list) {
        let w = kept.find((x) => span.first >= x.first && span.last < x.first + x.slots);
        if (!w) {
          const count = Math.max(span.last - span.first + 1, this.#aheadSlots);
          // Only small windows stay for later stretches; a large span is used once.
          w = { first: span.first, slots: count, bytes: new Uint8Array(0), used: stretch, kept: count === this.#aheadSlots };
          fresh.push({ p, window: w });
          if (w.kept) {
            kept.push(w);
            if (kept.length > WINDOWS_PER_PACK) dropped.push(kept.sort((a, b) => b.used - a.used).pop()!);
            this.#windows.set(p, kept);
          }
        }
        w.used = stretch;
        span.window = w;
      }
      spans.set(p, list);
    }
    // Buffers: from the pool and the arena when the store reads into them; else each read brings its own.
    if (this.#readInto) {
      const once = fresh.filter((f) => !f.window.kept).reduce((n, f) => n + f.window.slots * pageSize, 0);
      if (this.#arena.length < once) this.#arena = new Uint8Array(once);
      let at = 0;
      for (const { window: w } of fresh) {
        const length = w.slots * pageSize;
        if (w.kept) w.bytes = this.#pool.pop() ?? new Uint8Array(this.#aheadSlots * pageSize);
        else w.bytes = this.#arena.subarray(at, (at += length));
      }
    }
    await Promise.all(fresh.map(async ({ p, window: w }) => {
      w.bytes = await this.#read(p, w.first, w.slots, w.bytes, from, to);
      w.slots = Math.floor(w.bytes.length / pageSize);
    }));
    for (const [p, list] of spans) {
      for (const span of list) {
        if (span.last >= span.window.first + span.window.slots) {
          throw new PackReadError(this.names[p]!, firstPgnoAt(pack, slot, from, to, p, span.window.first + span.window.slots), 'is cut short (truncated)');
        }
      }
    }
    for (let i = from; i < to; i++) {
      const s = slot[i]!;
      const w = spans.get(pack[i]!)!.find((x) => s >= x.first && s <= x.last)!.window;
      const at = (s - w.first) * pageSize;
      into.set(w.bytes.subarray(at, at + pageSize), (i - from) * pageSize);
    }
    for (const [p, kept] of this.#windows) {
      const live = kept.filter((w) => w.used >= stretch - AHEAD_IDLE_STRETCHES);
      dropped.push(...kept.filter((w) => w.used < stretch - AHEAD_IDLE_STRETCHES));
      if (live.length) this.#windows.set(p, live);
      else this.#windows.delete(p);
    }
    if (this.#readInto) for (const w of dropped) this.#pool.push(new Uint8Array(w.bytes.buffer, w.bytes.byteOffset, this.#aheadSlots * pageSize));
  }

  /** Slots first… of pack `p`: into `buffer` when the store reads into buffers (a view of it returned), else a new one. */
  async #read(p: number, first: number, count: number, buffer: Uint8Array, from: number, to: number): Promise<Uint8Array> {
    const name = this.names[p]!;
    const path = this.store.join(this.dir, name);
    try {
      if (this.#readInto) return buffer.subarray(0, await this.#readInto(path, first * this.pageSize, buffer.subarray(0, count * this.pageSize)));
      return await this.store.read(path, first * this.pageSize, count * this.pageSize);
    } catch (e) {
      // ENOENT: a disk; NotFoundError: OPFS; TARGET_NOT_FOUND: an object store (target-store.ts) with no such object (its bucket answers: a missing bucket fails the listing first).
      const missing = (e as { code?: string }).code === 'ENOENT' || (e as { name?: string }).name === 'NotFoundError' || (e as { code?: string }).code === 'TARGET_NOT_FOUND';
      throw new PackReadError(name, firstPgnoAt(this.pack, this.slot, from, to, p, first), missing ? 'is missing' : `cannot be read (${(e as Error).message})`);
    }
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
 * their thread for more than a few milliseconds: `next()` yields once
 * `everyMs` have passed since its last turn (a turn per 4 MiB chunk cost
 * 10-40 ms of a 1 GB read: 250 round trips, each waiting behind whatever
 * else the thread had queued).
 */
export function yielder(everyMs = 8): { next(): Promise<void>; close(): void } {
  const { port1, port2 } = new MessageChannel();
  let wake = () => {};
  let last = performance.now();
  port1.onmessage = () => {
    last = performance.now();
    wake();
  };
  return {
    next: () => (performance.now() - last < everyMs ? Promise.resolve() : new Promise<void>((resolve) => {
      wake = resolve;
      port2.postMessage(null);
    })),
    close: () => port1.close(),
  };
}
