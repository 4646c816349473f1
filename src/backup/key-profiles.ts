/**
 * How a database's key is made from the user's secret. The default is plain
 * SQLCipher 4; `referenceApp` reproduces the application this service was
 * ported from, whose key depends on a salt kept in a file beside the database.
 */
import type { CipherSettings, KeyMaterial } from '../engine/cipher.ts';
import type { JournalMode } from '../engine/database.ts';
import { AlreadyExistsError, InvalidArgumentError, WrongKeyError } from '../engine/errors.ts';
import type { FileStore } from '../files/file-store.ts';
import { toHex } from '../engine/bytes.ts';

export interface KeyProfile {
  readonly name: string;
  readonly cipher: CipherSettings;
  readonly journalMode: JournalMode;
  /**
   * Files named `<database><suffix>` that the key depends on. They are copied
   * beside every backup (0600), rotated with it, and put back on restore.
   * A backup without them is keyed by the database's (see `keyFor`).
   */
  readonly sidecars: readonly string[];
  /**
   * Key material for the database (or backup) at `path`, whose sidecars are
   * read through `files`. For a backup, `databasePath` names its database:
   * a profile may fall back to the database's sidecars when the backup has none.
   */
  keyFor(secret: KeyMaterial, files: FileStore, path: string, databasePath?: string): Promise<KeyMaterial>;
  /** Where `keyFor` found what the key depends on, when that is worth telling (a fallback): one sentence, no secret. */
  keyNote?(files: FileStore, path: string, databasePath?: string): Promise<string | undefined>;
  /** Makes the sidecars of a new database at `path` (before it is created): refuses to replace one. */
  initialize?(files: FileStore, path: string): Promise<void>;
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
 * The reference app's salt for databases made before it kept a `.salt`
 * file (its "v1"; `LEGACY_PBKDF2_SALT` in its sqlcipher_utils.py). One salt
 * for every such database: two users with the same password share a key.
 */
export const REFERENCE_LEGACY_SALT = new TextEncoder().encode('no salt');

type SaltSource = { salt: Uint8Array; from: 'own' | 'database' | 'legacy'; file?: string };

/**
 * The reference app's rule, extended to backups: the file's own `.salt`; for
 * a backup without one (the app's own ATTACH … KEY backups copy no sidecar),
 * the database's `.salt`; with neither, the legacy fixed salt — exactly what
 * the app does for a database without `.salt`. A `.salt` of the wrong size is
 * damage, never a reason to fall back.
 */
async function referenceSalt(files: FileStore, path: string, databasePath?: string): Promise<SaltSource> {
  const candidates: Array<[string, SaltSource['from']]> = [[`${path}.salt`, 'own']];
  if (databasePath !== undefined && databasePath !== path) candidates.push([`${databasePath}.salt`, 'database']);
  for (const [file, from] of candidates) {
    if (!(await files.stat(file))) continue;
    const salt = await files.read(file, 0, REFERENCE_SALT_BYTES + 1).catch(() => null);
    if (!salt || salt.length !== REFERENCE_SALT_BYTES) {
      throw new WrongKeyError(`the ${REFERENCE_SALT_BYTES}-byte key salt file is damaged (${salt?.length ?? 'unreadable'} bytes): ${file}`);
    }
    return { salt, from, file };
  }
  return { salt: REFERENCE_LEGACY_SALT, from: 'legacy' };
}

/**
 * The reference application: key = PBKDF2-HMAC-SHA512(password, 32-byte salt
 * from `<db>.salt` — or, for its databases from before the `.salt` file, the
 * fixed `b"no salt"` — 256000 iterations, 64 bytes), handed to SQLCipher as
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
  async keyFor(secret, files, path, databasePath) {
    if (secret.password === undefined) throw new InvalidArgumentError('the reference-app profile takes a password, not a raw key');
    const { salt } = await referenceSalt(files, path, databasePath);
    const base = await crypto.subtle.importKey('raw', new TextEncoder().encode(secret.password), 'PBKDF2', false, ['deriveBits']);
    const bits = await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-512', salt: salt.slice(), iterations: 256_000 }, base, 512);
    return { password: `x'${toHex(new Uint8Array(bits))}'` };
  },
  async keyNote(files, path, databasePath) {
    const source = await referenceSalt(files, path, databasePath).catch(() => null);
    if (source?.from === 'database') return `no .salt beside ${files.basename(path)}: keyed with the database's ${files.basename(source.file!)}`;
    if (source?.from === 'legacy') return `no .salt beside ${files.basename(path)}${databasePath && databasePath !== path ? ' or its database' : ''}: keyed with the reference app's legacy fixed salt`;
    return undefined;
  },
  async initialize(files, path) {
    const file = `${path}.salt`;
    if (await files.stat(file)) throw new AlreadyExistsError(`a key salt file already exists: ${file} (refusing to replace it: the database it belongs to would be lost)`);
    const writer = await files.create(file);
    try {
      await writer.write(crypto.getRandomValues(new Uint8Array(REFERENCE_SALT_BYTES)));
      await writer.close();
    } catch (e) {
      await writer.abort().catch(() => {});
      throw e;
    }
    await files.restrictToOwner(file, 'file');
  },
};

export const KEY_PROFILES = { sqlcipher4, 'reference-app': referenceApp } as const;
