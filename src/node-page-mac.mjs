// The SQLCipher page HMAC check of the Node/Deno page-check threads
// (node-page-check-worker.mjs), apart so that both of its ways are tested.
// Plain JavaScript, as the thread that loads it.
import crypto from 'node:crypto';

export const HASH = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' };
const MAC_BYTES = { SHA1: 20, SHA256: 32, SHA512: 64 };
const BLOCK_BYTES = { SHA1: 64, SHA256: 64, SHA512: 128 };

/**
 * `(bytes, at, skip, pgno) => boolean`: whether the page at `bytes[at]` holds
 * at `covered` the MAC HMAC(key, page[skip…covered) ‖ pgno as 4 little-endian bytes).
 * With the one-shot `hash` (Node ≥ 20.12, Deno), HMAC is built from two
 * hashes whose digests are latin1 strings: a createHmac object, or a Buffer,
 * per page cost as much again as the hashing itself (each Buffer's memory is
 * also swept on the threads that compile code). Without it, createHmac.
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
  const whole = inner.subarray(0, block + covered + 4);
  return (bytes, at, skip, pgno) => {
    const input = skip === 0 ? whole : inner.subarray(0, whole.length - skip);
    bytes.copy(input, block, at + skip, at + covered);
    input.writeUInt32LE(pgno, input.length - 4);
    outer.write(hash(name, input, 'latin1'), block, 'latin1');
    return hash(name, outer, 'latin1') === bytes.toString('latin1', at + covered, at + covered + macBytes);
  };
}
