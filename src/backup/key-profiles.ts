/**
 * How a database's key is made from the user's secret. The default is plain
 * SQLCipher 4; `referenceApp` reproduces the application this service was
 * ported from, whose key depends on a salt kept in a file beside the database.
 */
import { toHex, type CipherSettings, type KeyMaterial } from '../engine/cipher.ts';
import type { JournalMode } from '../engine/database.ts';
import { InvalidArgumentError, WrongKeyError } from '../engine/errors.ts';
import type { FileStore } from '../files/file-store.ts';

export interface KeyProfile {
  readonly name: string;
  readonly cipher: CipherSettings;
  readonly journalMode: JournalMode;
  /**
   * Files named `<database><suffix>` that the key depends on. They are copied
   * beside every backup (0600), rotated with it, and put back on restore.
   */
  readonly sidecars: readonly string[];
  /** Key material for the database (or backup) at `path`, whose sidecars are read through `files`. */
  keyFor(secret: KeyMaterial, files: FileStore, path: string): Promise<KeyMaterial>;
}

/** SQLCipher 4 defaults; the secret is the key material itself. */
export const sqlcipher4: KeyProfile = {
  name: 'sqlcipher4',
  cipher: {},
  journalMode: 'delete',
  sidecars: [],
  keyFor: async (secret) => secret,
};

const REFERENCE_SALT_BYTES = 32;

/**
 * The reference application: key = PBKDF2-HMAC-SHA512(password, 32-byte salt
 * from `<db>.salt`, 256000 iterations, 64 bytes), handed to SQLCipher as
 * `PRAGMA key = "x'<128 hex>'"`. At 128 hex digits that literal is neither of
 * SQLCipher's raw-key forms (64 or 96), so SQLCipher runs it, as a
 * passphrase, through its own PBKDF2 with the file's salt — and so do we.
 * 16 KiB cipher pages, HMAC-SHA512, WAL.
 */
export const referenceApp: KeyProfile = {
  name: 'reference-app',
  cipher: { pageSize: 16384 },
  journalMode: 'wal',
  sidecars: ['.salt'],
  async keyFor(secret, files, path) {
    if (secret.password === undefined) throw new InvalidArgumentError('the reference-app profile takes a password, not a raw key');
    const salt = await files.read(`${path}.salt`, 0, REFERENCE_SALT_BYTES + 1).catch(() => null);
    if (!salt || salt.length !== REFERENCE_SALT_BYTES) {
      throw new WrongKeyError(`the ${REFERENCE_SALT_BYTES}-byte key salt file is missing or damaged: ${path}.salt`);
    }
    const base = await crypto.subtle.importKey('raw', new TextEncoder().encode(secret.password), 'PBKDF2', false, ['deriveBits']);
    const bits = await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-512', salt: salt.slice(), iterations: 256_000 }, base, 512);
    return { password: `x'${toHex(new Uint8Array(bits))}'` };
  },
};

export const KEY_PROFILES = { sqlcipher4, 'reference-app': referenceApp } as const;
