/**
 * Checks the HMAC of every page of a SQLCipher 4 file with WebCrypto — native
 * code in every runtime, ten times the speed of decrypting the pages in wasm.
 * A page whose bytes changed in any way (a flipped bit, a zeroed page, a page
 * from another file or another position) fails; the HMAC covers the page's
 * ciphertext, its IV and its page number, under a key derived from ours.
 *
 * Layout (SQLCipher 4 / sqlite3mc 'sqlcipher' legacy 4): each page ends with a
 * reserve of IV (16 bytes) + HMAC (64 for SHA512, 32 for SHA1/SHA256 — SHA1's
 * 20 are padded with 12 bytes nothing reads); page 1 starts with the 16-byte salt, which is not covered.
 * HMAC key = PBKDF2(key, salt XOR 0x3a, 2 iterations, 32 bytes) with the KDF's
 * hash (not the HMAC's: measured against sqlite3mc 2.3.3 for all three).
 */
import type { CipherSettings, HashAlgorithm } from '../engine/cipher.ts';

const HASH: Record<HashAlgorithm, string> = { SHA1: 'SHA-1', SHA256: 'SHA-256', SHA512: 'SHA-512' };
const HMAC_BYTES: Record<HashAlgorithm, number> = { SHA1: 20, SHA256: 32, SHA512: 64 };
const IV_BYTES = 16;
const SALT_BYTES = 16;
const BATCH_PAGES = 256;

export type PageCheck = { ok: true; pages: number } | { ok: false; page: number };

export async function checkPageHmacs(
  read: (offset: number, length: number) => Promise<Uint8Array>,
  size: number,
  key: Uint8Array,
  settings: Required<CipherSettings>,
  onBytes?: (done: number) => void,
): Promise<PageCheck> {
  const { pageSize, hmacAlgorithm, kdfAlgorithm } = settings;
  const reserve = IV_BYTES + (hmacAlgorithm === 'SHA512' ? 64 : 32);
  const covered = pageSize - reserve + IV_BYTES; // ciphertext + IV
  const salt = (await read(0, SALT_BYTES)).slice();
  const hmacSalt = salt.map((b) => b ^ 0x3a);
  const base = await crypto.subtle.importKey('raw', key.slice(), 'PBKDF2', false, ['deriveBits']);
  const hmacKeyBytes = await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: HASH[kdfAlgorithm], salt: hmacSalt, iterations: 2 }, base, 256);
  const hmacKey = await crypto.subtle.importKey('raw', hmacKeyBytes, { name: 'HMAC', hash: HASH[hmacAlgorithm] }, false, ['verify']);

  const pages = size / pageSize;
  const chunkPages = Math.max(1, Math.floor((4 << 20) / pageSize));
  for (let first = 0; first < pages; first += chunkPages) {
    const chunk = await read(first * pageSize, Math.min(chunkPages, pages - first) * pageSize);
    const count = chunk.length / pageSize;
    for (let b = 0; b < count; b += BATCH_PAGES) {
      const checks: Promise<boolean>[] = [];
      for (let i = b; i < Math.min(count, b + BATCH_PAGES); i++) {
        const pgno = first + i + 1;
        const page = chunk.subarray(i * pageSize, (i + 1) * pageSize);
        const start = pgno === 1 ? SALT_BYTES : 0;
        const input = new Uint8Array(covered - start + 4);
        input.set(page.subarray(start, covered));
        new DataView(input.buffer).setUint32(covered - start, pgno, true);
        checks.push(crypto.subtle.verify('HMAC', hmacKey, page.slice(covered, covered + HMAC_BYTES[hmacAlgorithm]), input));
      }
      const results = await Promise.all(checks);
      const bad = results.indexOf(false);
      if (bad >= 0) return { ok: false, page: first + b + bad + 1 };
    }
    onBytes?.((first + count) * pageSize);
  }
  return { ok: true, pages };
}
