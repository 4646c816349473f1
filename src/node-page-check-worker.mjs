// A worker thread of the Node/Deno page-check pool (src/node-page-check.ts):
// checks the SQLCipher page HMACs of one range of a file with node:crypto's
// native hashes. Plain JavaScript on purpose: it starts the same from the
// sources and from dist/, with no loader; and one file, so that whatever
// copies it beside a bundle copies all of it. Layout as in
// src/backup/page-check.ts. Imported outside a worker (tests), it only
// exports pageMacCheck.
import { parentPort } from 'node:worker_threads';
import crypto from 'node:crypto';
import { openSync, readSync, closeSync } from 'node:fs';

const IV_BYTES = 16;
const SALT_BYTES = 16;
const CHUNK_BYTES = 1 << 20;

parentPort?.on('message', (task) => {
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
 * With the one-shot `hash` (Node ≥ 20.12, Deno), HMAC is built from two
 * hashes whose digests are latin1 strings: a createHmac object, or a Buffer,
 * per page cost as much again as the hashing itself. Without it, createHmac.
 * `key` must be no longer than the hash's block (ours are 32 bytes).
 */
export function pageMacCheck(algorithm, key, covered, hash = crypto.hash) {
  const name = HASH[algorithm];
  const macBytes = MAC_BYTES[algorithm];
  if (typeof hash !== 'function') {
    const pgnoBytes = Buffer.alloc(4);
    return (bytes, at, skip, pgno) => {
      pgnoBytes.writeUInt32LE(pgno);
      return crypto.createHmac(name, key).update(bytes.subarray(at + skip, at + covered)).update(pgnoBytes).digest()
        .subarray(0, macBytes).equals(bytes.subarray(at + covered, at + covered + macBytes));
    };
  }
  const block = BLOCK_BYTES[algorithm];
  const inner = Buffer.alloc(block + covered + 4); // key ^ ipad ‖ page bytes ‖ page number
  const outer = Buffer.alloc(block + macBytes); // key ^ opad ‖ inner hash
  for (let i = 0; i < block; i++) {
    inner[i] = (key[i] ?? 0) ^ 0x36;
    outer[i] = (key[i] ?? 0) ^ 0x5c;
  }
  return (bytes, at, skip, pgno) => {
    const input = skip === 0 ? inner : inner.subarray(0, inner.length - skip);
    bytes.copy(input, block, at + skip, at + covered);
    input.writeUInt32LE(pgno, input.length - 4);
    outer.write(hash(name, input, 'latin1'), block, 'latin1');
    return hash(name, outer, 'latin1') === bytes.toString('latin1', at + covered, at + covered + macBytes);
  };
}

/** Pages from…to-1 (0-based) of the file: { ok: true } or { ok: false, page } (1-based). */
function check({ id, path, key, salt, pageSize, hmacAlgorithm, kdfAlgorithm, from, to }) {
  const reserve = IV_BYTES + (hmacAlgorithm === 'SHA512' ? 64 : 32);
  const covered = pageSize - reserve + IV_BYTES;
  // 32 bytes: shorter than every hash's block, so HMAC uses it as it is.
  const hmacKey = crypto.pbkdf2Sync(key, Buffer.from(salt).map((b) => b ^ 0x3a), 2, 32, HASH[kdfAlgorithm]);
  const checkPage = pageMacCheck(hmacAlgorithm, hmacKey, covered);
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
      for (let i = 0; i < count; i++) {
        if (!checkPage(buffer, i * pageSize, first + i === 0 ? SALT_BYTES : 0, first + i + 1)) return { ok: false, page: first + i + 1 };
      }
      if (count < want / pageSize) return { ok: false, page: first + count + 1 }; // the file ended early
      parentPort.postMessage({ id, progress: count * pageSize });
    }
    return { ok: true };
  } finally {
    closeSync(fd);
  }
}
