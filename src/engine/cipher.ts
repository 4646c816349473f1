/**
 * SQLCipher 4 settings and key handling. Keys are derived here with WebCrypto
 * (native PBKDF2 in every runtime) and handed to sqlite3mc as raw key + salt,
 * so the wasm never runs the slow KDF and the salt is always one we drew from
 * crypto.getRandomValues — never whatever the cipher layer read from a VFS.
 */
import { InvalidArgumentError } from './errors.ts';
import { toHex } from './bytes.ts';

export type HashAlgorithm = 'SHA1' | 'SHA256' | 'SHA512';

/** The SQLCipher settings people change. Defaults are SQLCipher 4's. */
export interface CipherSettings {
  /** PBKDF2 iterations for passphrases. SQLCipher 4 default: 256000. */
  kdfIterations?: number;
  /** Cipher page size in bytes (SQLCipher `cipher_page_size`). Default 4096. */
  pageSize?: number;
  /** Page HMAC algorithm. Default SHA512. */
  hmacAlgorithm?: HashAlgorithm;
  /** PBKDF2 hash. Default SHA512. */
  kdfAlgorithm?: HashAlgorithm;
  /**
   * Accept `kdfIterations` below MIN_KDF_ITERATIONS (1000). Each iteration
   * less makes guessing the password cheaper by the same factor: only for
   * files made that way elsewhere, or tests. Default false.
   */
  allowWeakKdf?: boolean;
  /**
   * SQLCipher major version whose defaults to start from (SQLCipher's
   * `cipher_compatibility`): 4 (default) or 3 — 64000 iterations of
   * PBKDF2-SHA1, 1024-byte pages, HMAC-SHA1. Settings given beside it win.
   */
  compatibility?: 3 | 4;
  /**
   * Bytes at the start of the file left unencrypted (SQLCipher's
   * `cipher_plaintext_header_size`: 32 for iOS apps, so the OS sees a SQLite
   * header). 0 (default) or a multiple of 16 below 100. Such a file does not
   * hold its salt: `salt` must be given with it.
   */
  plaintextHeaderSize?: number;
  /** The 16-byte KDF salt (SQLCipher's `cipher_salt`), for files that do not carry theirs (plaintextHeaderSize > 0). */
  salt?: Uint8Array | null;
}

/**
 * The fewest PBKDF2 iterations accepted without `allowWeakKdf`: the minimum
 * PKCS #5 (RFC 8018, section 4.2) has recommended since 2000. It is a floor
 * against mistakes (`kdfIterations: 1`), not advice: SQLCipher 4's 256000
 * is the default and what new files should use.
 */
export const MIN_KDF_ITERATIONS = 1000;

export const SQLCIPHER4_DEFAULTS: Required<CipherSettings> = {
  kdfIterations: 256_000,
  pageSize: 4096,
  hmacAlgorithm: 'SHA512',
  kdfAlgorithm: 'SHA512',
  allowWeakKdf: false,
  compatibility: 4,
  plaintextHeaderSize: 0,
  salt: null,
};

/** SQLCipher 3's defaults (`PRAGMA cipher_compatibility = 3`). */
export const SQLCIPHER3_DEFAULTS: Required<CipherSettings> = {
  ...SQLCIPHER4_DEFAULTS,
  kdfIterations: 64_000,
  pageSize: 1024,
  hmacAlgorithm: 'SHA1',
  kdfAlgorithm: 'SHA1',
  compatibility: 3,
};

/** Either a passphrase (run through PBKDF2 like SQLCipher does) or a raw 32-byte key. */
export type KeyMaterial = { password: string; key?: never } | { key: Uint8Array; password?: never };

export const SALT_BYTES = 16;
export const KEY_BYTES = 32;

const HASH_INDEX: Record<HashAlgorithm, number> = { SHA1: 0, SHA256: 1, SHA512: 2 };
const WEBCRYPTO_HASH: Record<HashAlgorithm, string> = { SHA1: 'SHA-1', SHA256: 'SHA-256', SHA512: 'SHA-512' };

export function resolveSettings(settings: CipherSettings = {}): Required<CipherSettings> {
  if (settings.compatibility !== undefined && settings.compatibility !== 3 && settings.compatibility !== 4) {
    throw new InvalidArgumentError(`compatibility is 3 or 4 (SQLCipher's major version), not ${String(settings.compatibility)}`);
  }
  const defined = Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined));
  const s: Required<CipherSettings> = { ...(settings.compatibility === 3 ? SQLCIPHER3_DEFAULTS : SQLCIPHER4_DEFAULTS), ...defined };
  if (!Number.isInteger(s.kdfIterations) || s.kdfIterations < 1) {
    throw new InvalidArgumentError('kdfIterations must be a positive integer');
  }
  if (s.kdfIterations < MIN_KDF_ITERATIONS && s.allowWeakKdf !== true) {
    throw new InvalidArgumentError(
      `kdfIterations ${s.kdfIterations} is below the minimum of ${MIN_KDF_ITERATIONS}: it makes guessing the password ` +
        `${Math.round(SQLCIPHER4_DEFAULTS.kdfIterations / s.kdfIterations)} times cheaper than the default; ` +
        'pass allowWeakKdf: true (CLI: --allow-weak-kdf) to accept that',
    );
  }
  if (!Number.isInteger(s.pageSize) || s.pageSize < 512 || s.pageSize > 65536 || (s.pageSize & (s.pageSize - 1)) !== 0) {
    throw new InvalidArgumentError('pageSize must be a power of two between 512 and 65536');
  }
  for (const alg of [s.hmacAlgorithm, s.kdfAlgorithm]) {
    if (!(alg in HASH_INDEX)) throw new InvalidArgumentError(`unknown hash algorithm: ${String(alg)}`);
  }
  const header = s.plaintextHeaderSize;
  if (!Number.isInteger(header) || header < 0 || header >= 100 || header % 16 !== 0) {
    throw new InvalidArgumentError('plaintextHeaderSize is 0 or a multiple of 16 below 100 (SQLCipher uses 32)');
  }
  if (s.salt !== null && (!(s.salt instanceof Uint8Array) || s.salt.length !== SALT_BYTES)) {
    throw new InvalidArgumentError(`salt must be a Uint8Array of ${SALT_BYTES} bytes`);
  }
  if (header > 0 && s.salt === null) {
    throw new InvalidArgumentError('a file with a plaintext header does not hold its salt: give salt (16 bytes; CLI --salt HEX) with plaintextHeaderSize');
  }
  return s;
}

/** PRAGMAs that select SQLCipher 4 (or 3) format with these settings; run before the key. */
export function cipherPragmas(s: Required<CipherSettings>, schema = 'main'): string[] {
  return [
    `PRAGMA ${schema}.cipher = 'sqlcipher'`,
    `PRAGMA ${schema}.legacy = ${s.compatibility}`,
    `PRAGMA ${schema}.legacy_page_size = ${s.pageSize}`,
    `PRAGMA ${schema}.kdf_iter = ${s.kdfIterations}`,
    `PRAGMA ${schema}.hmac_algorithm = ${HASH_INDEX[s.hmacAlgorithm]}`,
    `PRAGMA ${schema}.kdf_algorithm = ${HASH_INDEX[s.kdfAlgorithm]}`,
    `PRAGMA ${schema}.plaintext_header_size = ${s.plaintextHeaderSize}`,
  ];
}

export function validateKeyMaterial(material: KeyMaterial): void {
  if (material.key !== undefined) {
    if (!(material.key instanceof Uint8Array) || material.key.length !== KEY_BYTES) {
      throw new InvalidArgumentError(`a raw key must be a Uint8Array of ${KEY_BYTES} bytes`);
    }
  } else if (typeof material.password !== 'string' || material.password.length === 0) {
    throw new InvalidArgumentError('a non-empty password or a raw key is required');
  }
}

/** The key SQLCipher would derive for this passphrase and salt, or the raw key itself. */
export async function deriveKey(
  material: KeyMaterial,
  salt: Uint8Array,
  s: Required<CipherSettings>,
): Promise<Uint8Array> {
  validateKeyMaterial(material);
  // A copy, never a view: callers zero what this returns, and a Buffer's slice() shares the caller's key.
  if (material.key !== undefined) return new Uint8Array(material.key);
  const base = await crypto.subtle.importKey(
    'raw', new TextEncoder().encode(material.password), 'PBKDF2', false, ['deriveBits'],
  );
  const bits = await crypto.subtle.deriveBits(
    { name: 'PBKDF2', hash: WEBCRYPTO_HASH[s.kdfAlgorithm], salt: salt.slice(), iterations: s.kdfIterations },
    base, KEY_BYTES * 8,
  );
  return new Uint8Array(bits);
}

/** A fresh random KDF salt. */
export function newSalt(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(SALT_BYTES));
}

/**
 * The SQL literal for `PRAGMA key`/`rekey`: raw key, plus the salt when given
 * (SQLCipher's `x'<64 hex key><32 hex salt>'` form). Only hex reaches SQL.
 */
export function rawKeyLiteral(key: Uint8Array, salt?: Uint8Array): string {
  return `"x'${toHex(key)}${salt ? toHex(salt) : ''}'"`;
}
