/**
 * Reading a page store: which manifests, temporary files and packs it holds,
 * which generation is the newest under our key (the head), and whether the
 * manifests agree with each other: the head names every generation the store
 * should hold (with its digest), and each generation names its parent's digest.
 */
import { CorruptDatabaseError } from '../../engine/errors.ts';
import type { FileStore, HeldLock } from '../../files/file-store.ts';
import {
  checkRuns, decodeHeader, manifestName, parseManifestName, parsePackName, parseTmpName, tmpName, MANIFEST_PREFIX, PACK_PREFIX, type ManifestBody, type ManifestHeader,
} from './format.ts';
import { bytesEqual, randomHex, toHex } from '../../engine/bytes.ts';
import { isOpened, openManifest, sealManifest, type OpenedManifest, type OpenFailure, type StoreKeys } from './seal.ts';

/** The lock holding a writer works under: its token names its temporary files and packs. */
export interface Holding {
  token: string;
  /** Throws when the lock was lost (taken over): called before every step others can see. */
  check(): Promise<void>;
  mayBeAlive(token: string): Promise<boolean>;
}

/** The caller's lock, or (without one) a private token that treats every other writer as gone. */
export function holdingOf(lock?: HeldLock): Holding {
  if (lock) return lock;
  const token = randomHex(6);
  return { token, check: async () => {}, mayBeAlive: async (t) => t === token };
}

export interface StoredManifest {
  seq: number;
  name: string;
  path: string;
  size: number;
  /** null when the header does not parse (then `headerError` says why). */
  header: ManifestHeader | null;
  headerError?: string;
}

export interface StoredFile {
  name: string;
  path: string;
  size: number;
  token: string;
}

export interface Scan {
  /** Newest first. */
  manifests: StoredManifest[];
  tmps: StoredFile[];
  packs: StoredFile[];
}

const HEADER_PROBE_BYTES = 64 * 1024;
const HEADERS_AT_ONCE = 8;

export async function scanStore(store: FileStore, dir: string): Promise<Scan> {
  const named: Array<{ seq: number; name: string; path: string; size: number }> = [];
  const tmps: StoredFile[] = [];
  const [listed, packed] = await Promise.all([store.list(dir, MANIFEST_PREFIX), store.list(dir, PACK_PREFIX)]);
  for (const f of listed) {
    const path = store.join(dir, f.name);
    const seq = parseManifestName(f.name);
    if (seq !== null) {
      named.push({ seq, name: f.name, path, size: f.size });
      continue;
    }
    const tmp = parseTmpName(f.name);
    if (tmp) tmps.push({ name: f.name, path, size: f.size, token: tmp.token });
  }
  // Headers read a few side by side (on a bucket each is a request; too many at once and it refuses some).
  const manifests: StoredManifest[] = [];
  for (let i = 0; i < named.length; i += HEADERS_AT_ONCE) {
    manifests.push(...(await Promise.all(named.slice(i, i + HEADERS_AT_ONCE).map(async (m) => ({ ...m, ...(await readHeader(store, m.path, m.size)) })))));
  }
  const packs: StoredFile[] = [];
  for (const f of packed) {
    const parsed = parsePackName(f.name);
    if (parsed) packs.push({ name: f.name, path: store.join(dir, f.name), size: f.size, token: parsed.token });
  }
  manifests.sort((a, b) => b.seq - a.seq);
  return { manifests, tmps, packs };
}

async function readHeader(store: FileStore, path: string, size: number): Promise<{ header: ManifestHeader | null; headerError?: string }> {
  try {
    // A header names every pack its generation uses (300 at 1 GB, 16 KB): read in growing prefixes, not the whole file.
    let header = null;
    for (let probe = HEADER_PROBE_BYTES; ; probe *= 4) {
      header = decodeHeader(await store.read(path, 0, probe));
      if (header || probe >= size) break;
    }
    return header ? { header } : { header: null, headerError: 'truncated manifest header' };
  } catch (e) {
    return { header: null, headerError: (e as Error).message };
  }
}

/** Reads and authenticates a whole manifest file. */
export async function loadManifest(store: FileStore, keys: StoreKeys, m: StoredManifest): Promise<OpenedManifest | OpenFailure> {
  let bytes: Uint8Array;
  try {
    bytes = await store.read(m.path, 0, Math.max(m.size, 1));
  } catch (e) {
    return { reason: 'damaged', detail: `could not read ${m.name}: ${(e as Error).message}` };
  }
  return openManifest(keys, bytes, m.seq);
}

export function isOurs(m: StoredManifest, keys: StoreKeys): boolean {
  return m.header !== null && bytesEqual(m.header.keyId, keys.keyId);
}

/** The newest generation under our key, or why there is no usable one. */
export type Head =
  | { kind: 'none' }
  | { kind: 'ok'; stored: StoredManifest; manifest: OpenedManifest }
  | { kind: 'damaged'; stored: StoredManifest; detail: string };

/**
 * The head is the highest-numbered manifest sealed under our key. A manifest
 * above it whose header does not parse may be our real head, damaged: that
 * counts as a damaged head too (we cannot tell whose it was).
 */
export async function findHead(store: FileStore, keys: StoreKeys, scan: Scan): Promise<Head> {
  for (const m of scan.manifests) {
    if (!m.header) return { kind: 'damaged', stored: m, detail: m.headerError ?? 'unreadable header' };
    if (!isOurs(m, keys)) continue;
    const opened = await loadManifest(store, keys, m);
    return isOpened(opened) ? { kind: 'ok', stored: m, manifest: opened } : { kind: 'damaged', stored: m, detail: opened.detail };
  }
  return { kind: 'none' };
}

/** The generation the caller last saw committed (kept outside the store): detects a store rolled back past it. */
export interface Anchor {
  seq: number;
  /** Hex SHA-256 of the generation's logical section, as returned by backupGeneration. */
  digest?: string;
}

export type GenerationState = 'ok' | 'expired' | 'damaged' | 'missing' | 'foreign-key';

export interface Checked {
  seq: number;
  stored: StoredManifest | null;
  manifest: OpenedManifest | null;
  state: GenerationState;
  retained: boolean;
  detail?: string;
}

export interface Consistency {
  head: Head;
  /** Every manifest present plus every retained one that is not, newest first. */
  generations: Checked[];
  /** Damage and tampering found (empty when the store is consistent). */
  problems: string[];
}

/**
 * Opens every manifest and checks them against each other and the anchor.
 * `only`: open just these sequence numbers (and the head) fully; the others
 * are judged by their headers alone.
 */
export async function checkConsistency(store: FileStore, keys: StoreKeys, scan: Scan, anchor?: Anchor, only?: Set<number>): Promise<Consistency> {
  const head = await findHead(store, keys, scan);
  const problems: string[] = [];
  const retained = new Map<number, Uint8Array>();
  if (head.kind === 'ok') for (const e of head.manifest.body.retained) retained.set(e.seq, e.digest);
  if (head.kind === 'damaged') problems.push(`the newest manifest ${head.stored.name} is damaged: ${head.detail}`);

  const generations: Checked[] = [];
  for (const m of scan.manifests) {
    const base = { seq: m.seq, stored: m, retained: retained.has(m.seq) };
    if (!m.header) {
      generations.push({ ...base, manifest: null, state: 'damaged', detail: m.headerError });
      if (head.kind !== 'damaged' || head.stored !== m) problems.push(`${m.name} is damaged: ${m.headerError}`);
      continue;
    }
    if (!isOurs(m, keys)) {
      generations.push({ ...base, manifest: null, state: 'foreign-key', detail: 'sealed under another key' });
      if (retained.has(m.seq)) problems.push(`${m.name} was replaced by a manifest under another key`);
      continue;
    }
    const opened = head.kind === 'ok' && head.stored === m ? head.manifest
      : only && !only.has(m.seq) ? null : await loadManifest(store, keys, m);
    if (opened && !isOpened(opened)) {
      generations.push({ ...base, manifest: null, state: 'damaged', detail: opened.detail });
      if (head.kind !== 'damaged' || head.stored !== m) problems.push(`${m.name} is damaged: ${opened.detail}`);
      continue;
    }
    const expected = retained.get(m.seq);
    if (opened && expected && !bytesEqual(expected, opened.digest)) {
      generations.push({ ...base, manifest: opened, state: 'damaged', detail: 'not the generation the newest manifest recorded under this number (replaced or rolled back)' });
      problems.push(`${m.name} is not the generation the newest manifest recorded (replaced or rolled back)`);
      continue;
    }
    const state: GenerationState = head.kind !== 'ok' || retained.has(m.seq) ? 'ok' : 'expired';
    generations.push({ ...base, manifest: opened, state });
  }
  for (const seq of retained.keys()) {
    if (!scan.manifests.some((m) => m.seq === seq)) {
      generations.push({ seq, stored: null, manifest: null, state: 'missing', retained: true, detail: 'deleted from the store' });
      problems.push(`${manifestName(seq)} is missing: the newest manifest says the store holds it`);
    }
  }
  generations.sort((a, b) => b.seq - a.seq);

  // Parent links: a generation's parent, where still present and readable, is the one it was made from.
  const bySeq = new Map(generations.filter((g) => g.manifest).map((g) => [g.seq, g.manifest!]));
  for (const g of generations) {
    const l = g.manifest?.body.logical;
    if (!l || l.parentSeq === 0) continue;
    const parent = bySeq.get(l.parentSeq);
    if (l.parentSeq >= l.seq) problems.push(`${g.stored!.name} names a later generation as its parent`);
    else if (parent && !bytesEqual(parent.digest, l.parentDigest)) problems.push(`${g.stored!.name}'s parent ${manifestName(l.parentSeq)} is not the generation it was made from (replaced or rolled back)`);
  }

  if (anchor) {
    const headSeq = head.kind === 'none' ? 0 : head.stored.seq;
    if (headSeq < anchor.seq) problems.push(`rolled back: the newest generation is ${headSeq || 'none'}, but generation ${anchor.seq} was committed`);
    const at = generations.find((g) => g.seq === anchor.seq && g.manifest);
    if (at && anchor.digest && toHex(at.manifest!.digest) !== anchor.digest) problems.push(`${manifestName(anchor.seq)} is not the generation that was committed under that number`);
  }
  return { head, generations, problems };
}

/**
 * Writes a manifest the one safe way: sealed into a temporary file, made
 * durable, read back and compared, then renamed to its name in one step —
 * its appearance (or, for a rewrite, its replacement) is the commit.
 * `replace`: the manifest exists and is being rewritten (retention, repack);
 * otherwise a manifest already under that name is an error.
 */
export async function writeManifest(
  store: FileStore, dir: string, keys: StoreKeys, holding: Holding, packs: string[], body: ManifestBody, replace: boolean,
  /** The generation's digest (generationDigest of its logical section), and that section's bytes when at hand. */
  logical: { digest: Uint8Array; bytes?: Uint8Array },
): Promise<{ bytes: number; manifest: OpenedManifest }> {
  const seq = body.logical.seq;
  const final = store.join(dir, manifestName(seq));
  const tmp = store.join(dir, tmpName(manifestName(seq), holding.token));
  // What a reader refuses is never written: runs that miss a page or name no pack.
  try {
    checkRuns(body.runs, body.logical.pageCount, packs.length);
  } catch (e) {
    throw new CorruptDatabaseError(`${manifestName(seq)} not written: ${(e as Error).message}`);
  }
  const { header, sealed } = await sealManifest(keys, packs, body, logical.bytes);
  await store.remove(tmp).catch(() => false);
  try {
    const writer = await store.create(tmp);
    try {
      await writer.write(header);
      await writer.write(sealed);
      await writer.close();
    } catch (e) {
      await writer.abort().catch(() => {});
      throw e;
    }
    const back = await store.read(tmp, 0, header.length + sealed.length + 1);
    const same = back.length === header.length + sealed.length && bytesEqual(back.subarray(0, header.length), header) && bytesEqual(back.subarray(header.length), sealed);
    if (!same) throw new CorruptDatabaseError(`manifest ${manifestName(seq)} read back different from what was written`);
    // The store holds the bytes sealed from `body`. A rewrite (rare: retention, repack) replaces a good manifest, so it
    // is also opened and must be the same generation; a new one is not (4 MB to decrypt and decode per 1 GB).
    const reopened = replace ? await openManifest(keys, back, seq) : null;
    if (reopened && (!isOpened(reopened) || !bytesEqual(reopened.digest, logical.digest))) {
      throw new CorruptDatabaseError(`manifest ${manifestName(seq)} does not open as the generation it rewrites`);
    }
    const opened: OpenedManifest = { header: decodeHeader(header)!, body, digest: logical.digest };
    await holding.check();
    if (!replace && (await store.stat(final))) throw new CorruptDatabaseError(`${manifestName(seq)} appeared while this generation was being written: is another writer using the store without the lock?`);
    await store.rename(tmp, final);
    return { bytes: back.length, manifest: opened };
  } finally {
    await store.remove(tmp).catch(() => false);
  }
}
