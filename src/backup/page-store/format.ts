/**
 * The page store's on-disk format, version 1: file names and the binary
 * layout of manifests (docs/page-store.md is the specification; keep the two
 * in step). Pure encoding and decoding: no storage, no crypto.
 */
import type { HashAlgorithm } from '../../engine/cipher.ts';
import { randomHex } from '../../engine/bytes.ts';

export const FORMAT_VERSION = 1;
/** The first 8 bytes of every manifest file. */
export const MANIFEST_MAGIC = 'CKPSMNFT';
export const FINGERPRINT_BYTES = 16;
export const DIGEST_BYTES = 32;
export const KEY_ID_BYTES = 16;
export const NONCE_BYTES = 12;
export const SALT_BYTES = 16;
const MAX_SEQ = 9_999_999_999;
const SEQ_DIGITS = 10;
const FIXED_HEADER_BYTES = 40; // magic 8, version 1, flags 1, reserved 2, seq 8, keyId 16, packCount 4

export const HASH_CODES: Record<HashAlgorithm, number> = { SHA1: 0, SHA256: 1, SHA512: 2 };
const HASH_NAMES: HashAlgorithm[] = ['SHA1', 'SHA256', 'SHA512'];

// ---- names ----

export const MANIFEST_PREFIX = 'gen-';
export const MANIFEST_SUFFIX = '.manifest';
export const PACK_PREFIX = 'pack-';
export const PACK_SUFFIX = '.pack';
export const TMP_SUFFIX = '.tmp';

export function manifestName(seq: number): string {
  if (!Number.isSafeInteger(seq) || seq < 1 || seq > MAX_SEQ) throw new RangeError(`sequence out of range: ${seq}`);
  return `${MANIFEST_PREFIX}${String(seq).padStart(SEQ_DIGITS, '0')}${MANIFEST_SUFFIX}`;
}

/** The sequence number of a committed manifest's name, or null for any other name. */
export function parseManifestName(name: string): number | null {
  const m = /^gen-(\d{10})\.manifest$/.exec(name);
  return m && Number(m[1]) >= 1 ? Number(m[1]) : null;
}

/** `<final>.<token>.tmp`: a file the lock holding `token` is still writing. */
export function tmpName(finalName: string, token: string): string {
  return `${finalName}.${token}${TMP_SUFFIX}`;
}

/** The holding token of a manifest's temporary name, or null for any other name. */
export function parseTmpName(name: string): { token: string } | null {
  const m = /^gen-\d{10}\.manifest\.([A-Za-z0-9-]{1,64})\.tmp$/.exec(name);
  return m ? { token: m[1]! } : null;
}

/** A new pack's name: 128 random bits, then the token of the holding that writes it. */
export function newPackName(token: string): string {
  return `${PACK_PREFIX}${randomHex(16)}-${token}${PACK_SUFFIX}`;
}

/** The token of a pack's name, or null when `name` is not a pack. */
export function parsePackName(name: string): { token: string } | null {
  const m = /^pack-[0-9a-f]{32}-([A-Za-z0-9-]{1,64})\.pack$/.exec(name);
  return m ? { token: m[1]! } : null;
}

// ---- manifests ----

/** The part of a manifest readable without the key (authenticated, not encrypted). */
export interface ManifestHeader {
  version: number;
  seq: number;
  keyId: Uint8Array;
  /** Pack file names this manifest's pages live in (its runs index into this list). */
  packs: string[];
  nonce: Uint8Array;
  /** Length of the AES-GCM ciphertext, tag included. */
  cipherLength: number;
  /** Bytes from the start of the file to the end of the ciphertext length: the AEAD's additional data. */
  headerLength: number;
}

/**
 * Runs, 4 numbers each (firstPgno, count, pack index, firstSlot): pages
 * firstPgno … firstPgno+count-1 are slots firstSlot … of that pack. Flat:
 * a generation made over weeks has tens of thousands.
 */
export type Runs = Uint32Array;
export const RUN_FIELDS = 4;

export interface RetainedEntry {
  seq: number;
  createdAtMs: number;
  digest: Uint8Array;
}

/** What a generation is: covered by its digest, never changed after it is committed. */
export interface Logical {
  seq: number;
  createdAtMs: number;
  parentSeq: number;
  parentDigest: Uint8Array;
  salt: Uint8Array;
  pageSize: number;
  hmacAlgorithm: HashAlgorithm;
  kdfAlgorithm: HashAlgorithm;
  journalMode: 'delete' | 'wal';
  full: boolean;
  /** Pages this generation wrote into packs when it was made. */
  newPages: number;
  pageCount: number;
  /** pageCount × 16 bytes: the first 16 bytes of each page's HMAC. */
  fingerprints: Uint8Array;
}

export interface ManifestBody {
  logical: Logical;
  /** Where each page lives; rewritten by repacks. */
  runs: Runs;
  /** The generations the store should hold, as of the last time this manifest was sealed. */
  retained: RetainedEntry[];
}

/** Whether this host stores a Uint32Array as the format does (little-endian): runs are then copied as bytes, not field by field. */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

const LOGICAL_FIXED = 8 + 8 + 8 + DIGEST_BYTES + SALT_BYTES + 4 + 4 + 4 + 4;

class Writer {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  at = 0;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }
  u8(v: number) { this.view.setUint8(this.at, v); this.at += 1; }
  u16(v: number) { this.view.setUint16(this.at, v, true); this.at += 2; }
  u32(v: number) { this.view.setUint32(this.at, v, true); this.at += 4; }
  u64(v: number) { this.view.setBigUint64(this.at, BigInt(v), true); this.at += 8; }
  raw(b: Uint8Array) { this.bytes.set(b, this.at); this.at += b.length; }
}

/** One decoder for every name in every header a listing reads. */
const UTF8 = new TextDecoder();

/** Thrown by the decoders: the bytes are not a well-formed version-1 manifest. */
export class FormatError extends Error {}
/** The bytes end before the structure does. */
class ShortError extends FormatError {}

class Reader {
  readonly view: DataView;
  at = 0;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number) {
    if (this.at + n > this.bytes.length) throw new ShortError(`manifest ends early (needs ${n} bytes at ${this.at} of ${this.bytes.length})`);
  }
  u8() { this.need(1); return this.view.getUint8(this.at++); }
  u16() { this.need(2); const v = this.view.getUint16(this.at, true); this.at += 2; return v; }
  u32() { this.need(4); const v = this.view.getUint32(this.at, true); this.at += 4; return v; }
  u64() {
    this.need(8);
    const v = this.view.getBigUint64(this.at, true);
    this.at += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError('64-bit field out of range');
    return Number(v);
  }
  raw(n: number) { this.need(n); const v = this.bytes.slice(this.at, this.at + n); this.at += n; return v; }
  /** The next `n` bytes as a view, not a copy: for what is decoded at once. */
  view8(n: number) { this.need(n); const v = this.bytes.subarray(this.at, this.at + n); this.at += n; return v; }
}

export function encodeHeader(h: Omit<ManifestHeader, 'headerLength' | 'version'>): Uint8Array {
  const names = h.packs.map((p) => new TextEncoder().encode(p));
  for (const n of names) if (n.length === 0 || n.length > 255) throw new RangeError('pack name length');
  const w = new Writer(FIXED_HEADER_BYTES + names.reduce((s, n) => s + 1 + n.length, 0) + NONCE_BYTES + 4);
  w.raw(new TextEncoder().encode(MANIFEST_MAGIC));
  w.u8(FORMAT_VERSION);
  w.u8(0);
  w.u16(0);
  w.u64(h.seq);
  w.raw(h.keyId);
  w.u32(names.length);
  for (const n of names) {
    w.u8(n.length);
    w.raw(n);
  }
  w.raw(h.nonce);
  w.u32(h.cipherLength);
  return w.bytes;
}

/**
 * Parses the header at the start of `bytes`. Throws FormatError when it is
 * not a manifest; returns null when `bytes` ends before the header does (the
 * caller reads more and tries again).
 */
export function decodeHeader(bytes: Uint8Array): ManifestHeader | null {
  const r = new Reader(bytes);
  try {
    const magic = UTF8.decode(r.view8(8));
    if (magic !== MANIFEST_MAGIC) throw new FormatError('not a page-store manifest (bad magic)');
    const version = r.u8();
    if (version !== FORMAT_VERSION) throw new FormatError(`unsupported manifest version ${version}`);
    if (r.u8() !== 0 || r.u16() !== 0) throw new FormatError('reserved header bytes are not zero');
    const seq = r.u64();
    const keyId = r.raw(KEY_ID_BYTES);
    const count = r.u32();
    if (count > 1 << 24) throw new FormatError('implausible pack count');
    const packs: string[] = [];
    for (let i = 0; i < count; i++) {
      const name = UTF8.decode(r.view8(r.u8()));
      if (!parsePackName(name)) throw new FormatError(`bad pack name in manifest: ${JSON.stringify(name.slice(0, 80))}`);
      packs.push(name);
    }
    const nonce = r.raw(NONCE_BYTES);
    const cipherLength = r.u32();
    return { version, seq, keyId, packs, nonce, cipherLength, headerLength: r.at };
  } catch (e) {
    if (e instanceof ShortError) return null;
    throw e;
  }
}

/** The logical section's bytes: what the digest covers. */
export function encodeLogical(l: Logical): Uint8Array {
  if (l.fingerprints.length !== l.pageCount * FINGERPRINT_BYTES) throw new RangeError('fingerprints do not match the page count');
  const w = new Writer(LOGICAL_FIXED + l.fingerprints.length);
  w.u64(l.seq);
  w.u64(l.createdAtMs);
  w.u64(l.parentSeq);
  w.raw(l.parentDigest);
  w.raw(l.salt);
  w.u32(l.pageSize);
  w.u8(HASH_CODES[l.hmacAlgorithm]);
  w.u8(HASH_CODES[l.kdfAlgorithm]);
  w.u8(l.journalMode === 'wal' ? 1 : 0);
  w.u8(l.full ? 1 : 0);
  w.u32(l.newPages);
  w.u32(l.pageCount);
  w.raw(l.fingerprints);
  return w.bytes;
}

/** `logical`: the logical section already encoded (the digest needed it), to save encoding it twice. */
export function encodeBody(body: ManifestBody, logical = encodeLogical(body.logical)): Uint8Array {
  const w = new Writer(logical.length + 4 + body.runs.length * 4 + 4 + body.retained.length * (16 + DIGEST_BYTES));
  w.raw(logical);
  w.u32(body.runs.length / RUN_FIELDS);
  if (LITTLE_ENDIAN) w.raw(new Uint8Array(body.runs.buffer, body.runs.byteOffset, body.runs.byteLength));
  else for (const v of body.runs) w.u32(v);
  w.u32(body.retained.length);
  for (const e of body.retained) {
    w.u64(e.seq);
    w.u64(e.createdAtMs);
    w.raw(e.digest);
  }
  return w.bytes;
}

/** Decodes a body and checks it is self-consistent; returns it with the logical bytes (for the digest). */
export function decodeBody(bytes: Uint8Array, packCount: number): { body: ManifestBody; logicalBytes: Uint8Array } {
  const r = new Reader(bytes);
  const seq = r.u64();
  const createdAtMs = r.u64();
  const parentSeq = r.u64();
  const parentDigest = r.raw(DIGEST_BYTES);
  const salt = r.raw(SALT_BYTES);
  const pageSize = r.u32();
  const hmacAlgorithm = HASH_NAMES[r.u8()];
  const kdfAlgorithm = HASH_NAMES[r.u8()];
  const journal = r.u8();
  const flags = r.u8();
  const newPages = r.u32();
  const pageCount = r.u32();
  if (!hmacAlgorithm || !kdfAlgorithm) throw new FormatError('unknown hash algorithm code');
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) throw new FormatError(`bad page size ${pageSize}`);
  if (journal > 1 || flags > 1) throw new FormatError('unknown journal mode or flags');
  if (pageCount < 1) throw new FormatError('a generation has at least one page');
  r.need(pageCount * FINGERPRINT_BYTES);
  const fingerprints = bytes.subarray(r.at, (r.at += pageCount * FINGERPRINT_BYTES)); // a view: the plaintext is ours alone
  const logicalBytes = bytes.subarray(0, r.at);
  const runCount = r.u32();
  r.need(runCount * RUN_FIELDS * 4);
  const runs = LITTLE_ENDIAN ? new Uint32Array(r.raw(runCount * RUN_FIELDS * 4).buffer) : Uint32Array.from({ length: runCount * RUN_FIELDS }, () => r.u32());
  checkRuns(runs, pageCount, packCount);
  const retainedCount = r.u32();
  r.need(retainedCount * (16 + DIGEST_BYTES));
  const retained: RetainedEntry[] = [];
  for (let i = 0; i < retainedCount; i++) retained.push({ seq: r.u64(), createdAtMs: r.u64(), digest: r.raw(DIGEST_BYTES) });
  if (r.at !== bytes.length) throw new FormatError('trailing bytes after the manifest body');
  const logical: Logical = {
    seq, createdAtMs, parentSeq, parentDigest, salt, pageSize, hmacAlgorithm, kdfAlgorithm,
    journalMode: journal === 1 ? 'wal' : 'delete', full: flags === 1, newPages, pageCount, fingerprints,
  };
  return { body: { logical, runs, retained }, logicalBytes };
}

/** Throws FormatError unless `runs` cover pages 1…pageCount in order, each in one of `packCount` packs. */
export function checkRuns(runs: Runs, pageCount: number, packCount: number): void {
  let next = 1;
  for (let i = 0; i < runs.length; i += RUN_FIELDS) {
    if (runs[i] !== next || runs[i + 1]! < 1 || runs[i + 2]! >= packCount) throw new FormatError('runs do not cover the pages in order');
    next += runs[i + 1]!;
  }
  if (next !== pageCount + 1) throw new FormatError('runs do not cover every page');
}

/** Runs from per-page pack indexes and slots (index i is page i+1). */
export function toRuns(packs: Uint32Array, slots: Uint32Array, pageCount: number): Runs {
  let count = 0;
  for (let i = 0; i < pageCount; i++) if (i === 0 || packs[i] !== packs[i - 1] || slots[i] !== slots[i - 1]! + 1) count++;
  const runs = new Uint32Array(count * RUN_FIELDS);
  let at = -RUN_FIELDS;
  for (let i = 0; i < pageCount; i++) {
    if (i === 0 || packs[i] !== packs[i - 1] || slots[i] !== slots[i - 1]! + 1) {
      at += RUN_FIELDS;
      runs[at] = i + 1;
      runs[at + 2] = packs[i]!;
      runs[at + 3] = slots[i]!;
    }
    runs[at + 1]!++;
  }
  return runs;
}

/** Per page (index i is page i+1): the index into `packs` of its pack, and its slot. */
export function locate(packs: string[], runs: Runs, pageCount: number): { names: string[]; pack: Uint32Array; slot: Uint32Array } {
  const pack = new Uint32Array(pageCount);
  const slot = new Uint32Array(pageCount);
  for (let r = 0; r < runs.length; r += RUN_FIELDS) {
    const firstPgno = runs[r]!, count = runs[r + 1]!, firstSlot = runs[r + 3]!;
    pack.fill(runs[r + 2]!, firstPgno - 1, firstPgno - 1 + count);
    for (let k = 0; k < count; k++) slot[firstPgno - 1 + k] = firstSlot + k;
  }
  return { names: packs, pack, slot };
}
