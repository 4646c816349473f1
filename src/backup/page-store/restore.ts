/**
 * Reading generations back: list them (with what is wrong with the store),
 * assemble one into a SQLCipher file (every page checked at its page number
 * against the HMAC and the fingerprint its manifest recorded), stream one out,
 * or verify one without writing anything.
 */
import type { JournalMode } from '../../engine/database.ts';
import { CorruptDatabaseError, DatabaseNotFoundError, InvalidArgumentError, WrongKeyError } from '../../engine/errors.ts';
import type { FileStore } from '../../files/file-store.ts';
import { locate, manifestName } from './format.ts';
import { toHex } from '../../engine/bytes.ts';
import { fingerprintOf, PackReadError, PageGatherer, STRETCH_BYTES, PageChecker, yielder, type OnPageStoreProgress } from './pages.ts';
import { deriveStoreKeys, type OpenedManifest } from './seal.ts';
import type { PageMacs } from '../page-check.ts';
import { checkConsistency, scanStore, type Anchor, type Checked, type GenerationState } from './state.ts';


export interface GenerationInfo {
  /** Its id: the sequence number in decimal. */
  generation: string;
  seq: number;
  state: GenerationState;
  /** Whether the newest manifest lists it as kept. */
  retained: boolean;
  /** ISO 8601 UTC; null when the manifest cannot be read with this key. */
  createdAt: string | null;
  full: boolean | null;
  pageCount: number | null;
  pageSize: number | null;
  /** Size of the database file it restores to. */
  databaseBytes: number | null;
  /** Pages this generation wrote (the rest it shares with earlier ones). */
  newPages: number | null;
  parent: string | null;
  digest: string | null;
  journalMode: JournalMode | null;
  /** Why the state is not 'ok'. */
  detail?: string;
}

export interface GenerationList {
  /** Newest first: every manifest present, and every one the newest manifest retains that is missing. */
  generations: GenerationInfo[];
  /** The newest generation under this key. */
  head: string | null;
  /** Damage and tampering detected; empty when the store is consistent. */
  problems: string[];
}

export interface ReadOptions {
  onProgress?: OnPageStoreProgress;
  /** The newest generation the caller saw committed: a store rolled back past it is refused. */
  anchor?: Anchor;
  /** The host's faster page MAC (BackupHost.pageMacs). */
  pageMacs?: PageMacs;
}

export type GenerationVerifyFailure = 'missing' | 'damaged' | 'wrong-key' | 'rolled-back' | 'corrupt';
export type GenerationVerifyResult =
  | { ok: true; generation: string; pages: number; bytes: number; problems: string[] }
  | { ok: false; reason: GenerationVerifyFailure; detail: string };

export interface RestoreGenerationResult {
  generation: string;
  pages: number;
  bytes: number;
  /** The journal mode the database had when it was backed up (the restored file is in rollback mode). */
  journalMode: JournalMode;
  /** Damage elsewhere in the store (this generation itself checked out). */
  problems: string[];
}

export async function listGenerations(store: FileStore, dir: string, key: Uint8Array, options: { anchor?: Anchor } = {}): Promise<GenerationList> {
  const keys = await deriveStoreKeys(key);
  const c = await checkConsistency(store, keys, await scanStore(store, dir), options.anchor);
  return {
    generations: c.generations.map(describe),
    head: c.head.kind === 'none' ? null : String(c.head.stored.seq),
    problems: c.problems,
  };
}

/**
 * Writes generation `generation` ('latest' for the newest) as a SQLCipher
 * file at `targetPath`, which must not exist: byte for byte the snapshot it
 * was made from, in rollback-journal mode. On any failure nothing is left at
 * `targetPath`.
 */
export async function restoreGeneration(
  store: FileStore, dir: string, generation: string, key: Uint8Array, targetPath: string, options: ReadOptions = {},
): Promise<RestoreGenerationResult> {
  const { manifest, problems } = await resolve(store, dir, generation, key, options.anchor);
  const writer = await store.create(targetPath);
  // Write-behind: a chunk is written while the next one is checked (where the store writes off the thread); the
  // assembler's buffers outlast one write in flight.
  let writing: Promise<void> = Promise.resolve();
  try {
    for await (const chunk of assemble(store, dir, manifest, key, true, options)) {
      await writing;
      writing = writer.write(chunk);
      writing.catch(() => {}); // awaited at the next chunk or below
    }
    await writing;
    await writer.close();
  } catch (e) {
    await writing.catch(() => {});
    await writer.abort().catch(() => {});
    throw e;
  }
  const l = manifest.body.logical;
  return { generation: String(l.seq), pages: l.pageCount, bytes: l.pageCount * l.pageSize, journalMode: l.journalMode, problems };
}

/**
 * The bytes of a generation as a plain SQLCipher file (it opens in native
 * SQLCipher with the database's key), in chunks of up to 4 MiB, each checked
 * before it is yielded: for downloads and copies elsewhere. A failure throws
 * mid-stream, so a consumer that got every chunk got a good file.
 */
export async function* exportGeneration(
  store: FileStore, dir: string, generation: string, key: Uint8Array, options: ReadOptions = {},
): AsyncGenerator<Uint8Array> {
  const { manifest } = await resolve(store, dir, generation, key, options.anchor);
  yield* assemble(store, dir, manifest, key, false, options);
}

/** Checks a generation without writing: its manifest, its place in the chain, and every page. */
export async function verifyGeneration(
  store: FileStore, dir: string, generation: string, key: Uint8Array, options: ReadOptions = {},
): Promise<GenerationVerifyResult> {
  try {
    const { manifest, problems } = await resolve(store, dir, generation, key, options.anchor);
    let bytes = 0;
    for await (const chunk of assemble(store, dir, manifest, key, true, options, 'verify')) bytes += chunk.length;
    return { ok: true, generation: String(manifest.body.logical.seq), pages: manifest.body.logical.pageCount, bytes, problems };
  } catch (e) {
    const reason: GenerationVerifyFailure = e instanceof DatabaseNotFoundError ? 'missing'
      : e instanceof WrongKeyError ? 'wrong-key'
      : (e as { pageStoreReason?: GenerationVerifyFailure }).pageStoreReason ?? 'corrupt';
    if (e instanceof InvalidArgumentError) throw e;
    return { ok: false, reason, detail: (e as Error).message };
  }
}

function fail(reason: GenerationVerifyFailure, message: string): CorruptDatabaseError {
  return Object.assign(new CorruptDatabaseError(message), { pageStoreReason: reason });
}

/** The authenticated manifest of `generation`, refusing one the rest of the store contradicts. */
async function resolve(store: FileStore, dir: string, generation: string, key: Uint8Array, anchor?: Anchor): Promise<{ manifest: OpenedManifest; problems: string[] }> {
  const keys = await deriveStoreKeys(key);
  const scan = await scanStore(store, dir);
  const wanted = generation === 'latest' ? null : parseGeneration(generation);
  const c = await checkConsistency(store, keys, scan, anchor, new Set(wanted === null ? [] : [wanted]));
  if (anchor && c.problems.some((p) => p.startsWith('rolled back') || p.includes('committed under that number'))) {
    throw fail('rolled-back', `page store rolled back: ${c.problems.join('; ')}`);
  }
  const seq = wanted ?? (c.head.kind === 'none' ? null : c.head.stored.seq);
  if (seq === null) throw new DatabaseNotFoundError(`no generation under this key in ${dir}`);
  const g: Checked | undefined = c.generations.find((x) => x.seq === seq);
  if (!g || g.state === 'missing') throw new DatabaseNotFoundError(`generation ${seq} is not in the store${g ? ` (${g.detail})` : ''}`);
  if (g.state === 'foreign-key') throw new WrongKeyError(`generation ${seq} was sealed under another key`);
  if (g.state === 'damaged' || !g.manifest) throw fail('damaged', `${manifestName(seq)}: ${g.detail ?? 'damaged'}`);
  return { manifest: g.manifest, problems: c.problems };
}

/** Accepts "42" or a manifest's name ("gen-0000000042.manifest", with or without the suffix). */
export function parseGeneration(id: string): number {
  const m = /^(?:gen-)?(\d{1,10})(?:\.manifest)?$/.exec(String(id).trim());
  const seq = m ? Number(m[1]) : NaN;
  if (!Number.isSafeInteger(seq) || seq < 1) throw new InvalidArgumentError(`not a generation id: ${JSON.stringify(String(id).slice(0, 40))} (a number, or 'latest')`);
  return seq;
}

/**
 * The generation's file, chunk by chunk, every page checked first. `reuse`:
 * yield from three buffers, refilled in turn: a chunk stays untouched until
 * the consumer asks for the one after the next (so it may write one chunk
 * while it takes the next).
 */
async function* assemble(
  store: FileStore, dir: string, m: OpenedManifest, key: Uint8Array, reuse: boolean, { onProgress, pageMacs }: ReadOptions,
  phase: 'restore' | 'verify' = 'restore',
): AsyncGenerator<Uint8Array> {
  const l = m.body.logical;
  const checker = await PageChecker.create(key, l, pageMacs);
  const { names, pack, slot } = locate(m.header.packs, m.body.runs, l.pageCount);
  const pages = new PageGatherer(store, dir, names, pack, slot, l.pageSize);
  const chunkPages = Math.max(1, Math.floor(STRETCH_BYTES / l.pageSize));
  const total = l.pageCount * l.pageSize;
  // Three buffers: the next stretch's reads run (in the host's I/O threads) while this one is checked and the one before is written.
  const spare = reuse ? Array.from({ length: 3 }, () => new Uint8Array(Math.min(chunkPages, l.pageCount) * l.pageSize)) : null;
  const fetch = (index: number) => {
    const from = index * chunkPages;
    const to = Math.min(l.pageCount, from + chunkPages);
    const chunk = spare ? spare[index % 3]!.subarray(0, (to - from) * l.pageSize) : new Uint8Array((to - from) * l.pageSize);
    const done = pages.gather(from, to, chunk).then(() => ({ from, to, chunk }));
    done.catch(() => {}); // awaited below; this only keeps an abandoned prefetch from being an unhandled rejection
    return done;
  };
  const stretches = Math.ceil(l.pageCount / chunkPages);
  const pause = yielder();
  try {
    let next = fetch(0);
    for (let index = 0; index < stretches; index++) {
      let got: { from: number; to: number; chunk: Uint8Array };
      try {
        got = await next;
      } catch (e) {
        if (e instanceof PackReadError) throw fail('corrupt', `generation ${l.seq}: ${e.message}`);
        throw e;
      }
      if (index + 1 < stretches) next = fetch(index + 1);
      const { from, to, chunk } = got;
      for (let i = from; i < to; i++) {
        const problem = checker.problem(chunk.subarray((i - from) * l.pageSize, (i - from + 1) * l.pageSize), i + 1, fingerprintOf(l, i + 1));
        if (problem) throw fail('corrupt', `generation ${l.seq}: ${problem}`);
      }
      await onProgress?.({ phase, bytesDone: to * l.pageSize, bytesTotal: total });
      yield chunk;
      await pause.next();
    }
  } finally {
    pause.close();
  }
}

function describe(g: Checked): GenerationInfo {
  const l = g.manifest?.body.logical;
  return {
    generation: String(g.seq), seq: g.seq, state: g.state, retained: g.retained,
    createdAt: l ? new Date(l.createdAtMs).toISOString() : null, full: l ? l.full : null,
    pageCount: l?.pageCount ?? null, pageSize: l?.pageSize ?? null, databaseBytes: l ? l.pageCount * l.pageSize : null,
    newPages: l?.newPages ?? null, parent: l && l.parentSeq ? String(l.parentSeq) : null,
    digest: g.manifest ? toHex(g.manifest.digest) : null, journalMode: l?.journalMode ?? null,
    ...(g.detail ? { detail: g.detail } : {}),
  };
}
