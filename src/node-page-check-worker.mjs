// A worker thread of the Node/Deno page-check pool (src/node-page-check.ts):
// checks the SQLCipher page HMACs of one range of a file with node:crypto's
// native hashes. Plain JavaScript on purpose: it starts the same from the
// sources and from dist/, with no loader; and one file, so that whatever
// copies it beside a bundle copies all of it. Layout as in
// src/backup/page-check.ts. Imported outside the pool's threads (the
// in-thread checks: nodePageMacs; tests), it only exports pageMacCheck.
import { parentPort, workerData } from 'node:worker_threads';
import crypto from 'node:crypto';
import { openSync, readSync, closeSync } from 'node:fs';

const IV_BYTES = 16;
const SALT_BYTES = 16;
const CHUNK_BYTES = 1 << 20;

// Only in a thread the pool started: imported in another worker (cipherkeep run in a worker thread, whose
// messages are its caller's), it must not answer them.
if (workerData?.cipherkeepPageCheck) parentPort?.on('message', (task) => {
  try {
    parentPort.postMessage({ id: task.id, ...check(task) });
  } catch (e) {
    parentPort.postMessage({ id: task.id, error: e instanceof Error ? e.message : String(e) });
  }
});

const HASH = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' };
const MAC_BYTES = { SHA1: 20, SHA256: 32, SHA512: 64 };
const BLOCK_BYTES = { SHA1: 64, SHA256: 64, SHA512: 128 };

/**
 * `(bytes, at, skip, pgno) => boolean`: whether the page at `bytes[at]` holds
 * at `covered` the MAC HMAC(key, page[skip…covered) ‖ pgno as 4 little-endian bytes).
 * `key` must be no longer than the hash's block (ours are 32 bytes).
 */
export function pageMacCheck(algorithm, key, covered, hash = crypto.hash) {
  const mac = pageMac(algorithm, key, covered, hash);
  return (bytes, at, skip, pgno) => mac.matches(mac, bytes, at, skip, pgno);
}

/**
 * What checks one page's MAC: `mac.matches(mac, bytes, at, skip, pgno)`.
 * With the one-shot `hash` (Node ≥ 20.12, Deno), HMAC is built from two
 * hashes whose digests are latin1 strings: a createHmac object, or a Buffer,
 * per page cost as much again as the hashing itself. Without it, createHmac.
 *
 * The first check in a process waits for V8 to compile the page loop. One
 * function for every key and range, given its state, is compiled once per
 * thread; a closure per range was compiled again for every range, each time
 * with Buffer's JavaScript inlined: 90 ms of CPU in the first check of 100 MB
 * on two threads, about 35 ms now.
 */
function pageMac(algorithm, key, covered, hash) {
  const name = HASH[algorithm];
  const macBytes = MAC_BYTES[algorithm];
  if (typeof hash !== 'function') return { matches: hmacMatches, name, key, covered, macBytes, pgno: Buffer.alloc(4) };
  const block = BLOCK_BYTES[algorithm];
  const inner = Buffer.alloc(block + covered + 4); // key ^ ipad ‖ page bytes ‖ page number
  const outer = Buffer.alloc(block + macBytes); // key ^ opad ‖ inner hash
  for (let i = 0; i < block; i++) {
    inner[i] = (key[i] ?? 0) ^ 0x36;
    outer[i] = (key[i] ?? 0) ^ 0x5c;
  }
  return { matches: hashMatches, hash, name, block, covered, macBytes, inner, outer };
}

// Typed-array stores and the latin1 bindings rather than Buffer's copy,
// writeUInt32LE, write and toString, whose JavaScript V8 compiles into the loop.
function hashMatches(m, bytes, at, skip, pgno) {
  const input = skip === 0 ? m.inner : m.inner.subarray(0, m.inner.length - skip);
  input.set(bytes.subarray(at + skip, at + m.covered), m.block);
  const end = input.length;
  input[end - 4] = pgno & 0xff;
  input[end - 3] = (pgno >>> 8) & 0xff;
  input[end - 2] = (pgno >>> 16) & 0xff;
  input[end - 1] = pgno >>> 24;
  m.outer.latin1Write(m.hash(m.name, input, 'latin1'), m.block);
  return m.hash(m.name, m.outer, 'latin1') === bytes.latin1Slice(at + m.covered, at + m.covered + m.macBytes);
}

function hmacMatches(m, bytes, at, skip, pgno) {
  m.pgno.writeUInt32LE(pgno);
  return crypto.createHmac(m.name, m.key).update(bytes.subarray(at + skip, at + m.covered)).update(m.pgno).digest()
    .subarray(0, m.macBytes).equals(bytes.subarray(at + m.covered, at + m.covered + m.macBytes));
}

/** The first page (1-based) of the `count` pages in `bytes`, page `first` + 1 the first of them, whose MAC is wrong; 0 when none. */
function firstBadPage(mac, bytes, pageSize, count, first) {
  for (let i = 0; i < count; i++) {
    if (!mac.matches(mac, bytes, i * pageSize, first + i === 0 ? SALT_BYTES : 0, first + i + 1)) return first + i + 1;
  }
  return 0;
}

/** Pages from…to-1 (0-based) of the file: { ok: true } or { ok: false, page } (1-based). */
function check({ id, path, key, salt, pageSize, hmacAlgorithm, kdfAlgorithm, from, to }) {
  const reserve = IV_BYTES + (hmacAlgorithm === 'SHA512' ? 64 : 32);
  const covered = pageSize - reserve + IV_BYTES;
  // 32 bytes: shorter than every hash's block, so HMAC uses it as it is.
  const hmacKey = crypto.pbkdf2Sync(key, Buffer.from(salt).map((b) => b ^ 0x3a), 2, 32, HASH[kdfAlgorithm]);
  const mac = pageMac(hmacAlgorithm, hmacKey, covered, crypto.hash);
  const chunkPages = Math.max(1, Math.floor(CHUNK_BYTES / pageSize));
  const buffer = Buffer.alloc(Math.min(chunkPages, to - from) * pageSize);
  const fd = openSync(path, 'r');
  try {
    for (let first = from; first < to; first += chunkPages) {
      const want = Math.min(chunkPages, to - first) * pageSize;
      let got = 0;
      while (got < want) {
        const n = readSync(fd, buffer, got, want - got, first * pageSize + got);
        if (n === 0) break;
        got += n;
      }
      const count = Math.floor(got / pageSize);
      const bad = firstBadPage(mac, buffer, pageSize, count, first);
      if (bad !== 0) return { ok: false, page: bad };
      if (count < want / pageSize) return { ok: false, page: first + count + 1 }; // the file ended early
      parentPort.postMessage({ id, progress: count * pageSize });
    }
    return { ok: true };
  } finally {
    closeSync(fd);
  }
}
