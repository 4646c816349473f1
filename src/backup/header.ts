/**
 * How many bytes a database holds, from its own header: page 1 is
 * encrypted, so its database-size field is read by decrypting the two AES
 * blocks that hold it (SQLCipher: AES-256-CBC with the raw key, the page's
 * IV in its reserve). A file padded past its last page (a sparse 10 GiB
 * file holding 2 pages) is then copied, and space asked for, by what it holds.
 */
import type { CipherSettings } from '../engine/cipher.ts';
import type { FileStore } from '../files/file-store.ts';
import { hmacOffsetOf } from './page-check.ts';

const SALT_BYTES = 16;
const IV_BYTES = 16;
/** Plaintext offsets 16..95 of page 1: the header fields up to "version valid for". */
const SPAN = 80;

/**
 * The database's size in bytes according to page 1 (pages × page size), or
 * null when the header's size is not valid (SQLite then uses the file size,
 * and so do we) or the file is too short to say.
 */
export async function headerBytes(files: FileStore, path: string, key: Uint8Array, settings: Required<CipherSettings>): Promise<number | null> {
  return (await readHeader(files, path, key, settings))?.bytes ?? null;
}

/**
 * What page 1's header says: the size as headerBytes has it, and whether the
 * file is in WAL mode (read and write versions 2). null: too short to say.
 */
export async function readHeader(files: FileStore, path: string, key: Uint8Array, settings: Required<CipherSettings>): Promise<{ bytes: number | null; wal: boolean } | null> {
  const [head, iv] = await Promise.all([
    files.read(path, SALT_BYTES, SPAN),
    files.read(path, hmacOffsetOf(settings) - IV_BYTES, IV_BYTES),
  ]);
  if (head.length < SPAN || iv.length < IV_BYTES) return null;
  const aes = await crypto.subtle.importKey('raw', key.slice(0, 32), 'AES-CBC', false, ['encrypt', 'decrypt']);
  // WebCrypto only decrypts padded CBC: append the block that decrypts to a full padding block.
  const padding = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-CBC', iv: head.slice(SPAN - 16) }, aes, new Uint8Array(16).fill(16))).subarray(0, 16);
  const plain = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-CBC', iv: iv.slice() }, aes, concat(head, padding)));
  const at = (offset: number) => new DataView(plain.buffer, plain.byteOffset + offset - SALT_BYTES, 4).getUint32(0);
  const pages = at(28);
  const wal = plain[18 - SALT_BYTES] === 2 || plain[19 - SALT_BYTES] === 2;
  // The size field counts only when the change counter matches "version valid for" (SQLite's rule).
  return { bytes: pages === 0 || at(24) !== at(92) ? null : pages * settings.pageSize, wal };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
