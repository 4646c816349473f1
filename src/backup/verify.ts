/**
 * Checking a backup file: it opens with the key, every page carries the HMAC
 * SQLite wrote under that key, its page count matches its size, and (at full
 * depth) SQLite's own quick_check passes. Opens read-only: a check never
 * writes to what it checks.
 */
import { deriveKey, resolveSettings, SALT_BYTES, SQLCIPHER3_DEFAULTS, type CipherSettings, type KeyMaterial } from '../engine/cipher.ts';
import type { Database, OpenOptions } from '../engine/database.ts';
import { MissingModuleError, NotEncryptedError, PlaintextHeaderError, WrongKeyError } from '../engine/errors.ts';
import type { FileStore } from '../files/file-store.ts';
import type { KeyProfile } from './key-profiles.ts';
import { checkPageHmacs, type PageCheck } from './page-check.ts';
import type { PageChecks } from './types.ts';

/** How deep createBackup checks its copy; verifyBackup, restore and import always run 'full'. */
export type VerifyDepth = 'pages' | 'full';
export type VerifyFailure = 'missing' | 'empty' | 'truncated' | 'not-encrypted' | 'plaintext-header' | 'wrong-key' | 'corrupt' | 'live';
/**
 * `notes`: what is worth knowing and is not a failure — a table this engine
 * cannot read (its module, FTS3/FTS4 or R-Tree, is not built in; its pages
 * and shadow tables were still checked), or where the key's salt came from.
 */
export type VerifyResult = { ok: true; pages: number; tables: number; notes?: string[] } | { ok: false; reason: VerifyFailure; detail: string };

export interface VerifyContext {
  files: FileStore;
  open(path: string, options: OpenOptions): Promise<Database>;
  profile: KeyProfile;
  /** The database the checked files are backups of (profiles may key a backup by its database's sidecars). */
  databasePath?: string;
  /** The host's page check on every core, when it has one (BackupHost.checkPages). */
  checkPages?: PageChecks | undefined;
}

/** The raw key SQLCipher derives for the file at `path` (its salt is its first 16 bytes, or the given one for a plaintext header). */
export async function rawKeyFor(ctx: VerifyContext, material: KeyMaterial, path: string): Promise<KeyMaterial> {
  if (material.key !== undefined) return material;
  const settings = resolveSettings(ctx.profile.cipher);
  const salt = settings.plaintextHeaderSize > 0 ? settings.salt! : await ctx.files.read(path, 0, SALT_BYTES);
  if (salt.length < SALT_BYTES) return material; // let open() name the problem
  return { key: await deriveKey(material, salt, settings) };
}

/**
 * Both depths open the file with the key, check the HMAC of every page (in
 * use or free: proof that each page is the one SQLite wrote under this key,
 * without decrypting it), match the page count to the file size and read the
 * first row of every table. 'full' adds PRAGMA quick_check in the engine
 * (decrypts every page in use and checks the b-trees: catches a source that
 * was already damaged); 'pages' skips it.
 */
export async function verifyFile(
  ctx: VerifyContext, path: string, material: KeyMaterial,
  onProgress?: (done: number, total: number) => void | Promise<void>, depth: VerifyDepth = 'full',
  /**
   * The host's page check of this file, already made and reported as progress (DatabaseCopies.snapshotTo); null:
   * the host declined or failed, so the in-thread check runs without asking it again.
   */
  pagesChecked?: PageCheck | null,
): Promise<VerifyResult> {
  const info = await ctx.files.stat(path);
  if (!info) return { ok: false, reason: 'missing', detail: `no such file: ${path}` };
  if (info.size === 0) return { ok: false, reason: 'empty', detail: `empty file: ${path}` };
  ctx.checkPages?.warm?.(info.size); // threads start while the key is derived
  // A WAL or journal beside it holds pages the file lacks: that is a database in use, not a backup.
  for (const side of ['-wal', '-journal']) {
    if ((await ctx.files.stat(`${path}${side}`))?.size) {
      return { ok: false, reason: 'live', detail: `${ctx.files.basename(path)}${side} exists: a database in use, not a backup (back it up to check it)` };
    }
  }
  const settings = resolveSettings(ctx.profile.cipher);
  const pageSize = settings.pageSize;
  if (info.size % pageSize !== 0) {
    const hint = settings.compatibility === 4 && info.size % SQLCIPHER3_DEFAULTS.pageSize === 0 ? `; ${V3_HINT}` : '';
    return { ok: false, reason: 'truncated', detail: `${info.size} bytes is not a whole number of ${pageSize}-byte pages${hint}` };
  }
  const report = (done: number) => Promise.resolve(onProgress?.(Math.min(done, info.size), info.size)).catch(() => {});
  let db: Database | undefined;
  // A check already made at depth 'pages' is all this depth reports; its progress was the caller's.
  if (!pagesChecked || depth === 'full') await report(0);
  // Where the key came from, when a profile had to fall back: worth knowing on success, and the likeliest cause of a wrong key.
  const keyNote = await ctx.profile.keyNote?.(ctx.files, path, ctx.databasePath).catch(() => undefined);
  try {
    // Derive once: the same raw key opens the file and checks its pages.
    const raw = await rawKeyFor(ctx, material, path);
    db = await ctx.open(path, { ...raw, cipher: ctx.profile.cipher, busyTimeoutMs: 0, readonly: true });
    const key = raw.key;
    if (key !== undefined) {
      const opened = db;
      const onBytes = depth === 'pages' ? report : undefined;
      // The host's check failing to run (a thread gone) is no verdict: the in-thread check gives it.
      const pages = (pagesChecked !== undefined ? pagesChecked : await ctx.checkPages?.(path, key, settings, info.size, onBytes)?.catch(() => null))
        ?? (await checkPageHmacs((o, into) => opened.readRaw(o, into), info.size, key, settings, onBytes));
      if (!pages.ok) return { ok: false, reason: 'corrupt', detail: `page ${pages.page} failed its HMAC check` };
    }
    if (depth === 'full') {
      let done = 0;
      const unwatch = db.watchReads((n) => void report((done += n)));
      try {
        const check = await db.query<{ quick_check: string }>('PRAGMA quick_check');
        if (check.length !== 1 || check[0]!.quick_check !== 'ok') {
          return { ok: false, reason: 'corrupt', detail: check.slice(0, 3).map((r) => r.quick_check).join('; ') };
        }
      } finally {
        unwatch();
      }
    }
    const notes: string[] = keyNote ? [keyNote] : [];
    const tables = await db.query<{ name: string; sql: string | null }>("SELECT name, sql FROM sqlite_schema WHERE type = 'table'");
    for (const { name, sql } of tables) {
      try {
        await db.query(`SELECT * FROM "${name.replace(/"/g, '""')}" LIMIT 1`);
      } catch (e) {
        // A virtual table whose module is not built in: its data lives in shadow tables, checked above and here.
        if (!(e instanceof MissingModuleError) || !/^\s*create\s+virtual\s/i.test(sql ?? '')) throw e;
        notes.push(`table ${name} needs the ${/using\s+(\w+)/i.exec(sql ?? '')?.[1] ?? 'unknown'} module, which this engine lacks: its pages and shadow tables were checked, but it cannot be queried here`);
      }
    }
    const [{ n: pages } = { n: 0 }] = await db.query<{ n: number }>('SELECT page_count AS n FROM pragma_page_count()');
    if (Number(pages) * pageSize !== info.size) {
      return { ok: false, reason: 'truncated', detail: `file has ${info.size / pageSize} pages, the database ${pages}` };
    }
    return { ok: true, pages: Number(pages), tables: tables.length, ...(notes.length ? { notes } : {}) };
  } catch (e) {
    if (e instanceof WrongKeyError && (await restVerifies(ctx, path, material, info.size, settings))) {
      return { ok: false, reason: 'corrupt', detail: 'page 1 is damaged: the key checks out on every other page' };
    }
    if (e instanceof WrongKeyError && (await isSqlcipher3(ctx, path, material, info.size, settings))) {
      return { ok: false, reason: 'wrong-key', detail: `${e.message}: the key opens it with SQLCipher 3 settings — ${V3_HINT}` };
    }
    if (e instanceof WrongKeyError) return { ok: false, reason: 'wrong-key', detail: `${e.message}${keyNote ? ` (${keyNote})` : ''}` };
    if (e instanceof NotEncryptedError) return { ok: false, reason: 'not-encrypted', detail: e.message };
    if (e instanceof PlaintextHeaderError) return { ok: false, reason: 'plaintext-header', detail: e.message };
    return { ok: false, reason: 'corrupt', detail: e instanceof Error ? e.message : String(e) };
  } finally {
    await db?.close().catch(() => {});
  }
}

/**
 * When the file does not open with the key: do all its pages but the first
 * carry HMACs made with it? Then page 1 is damaged, and the key is right.
 */
async function restVerifies(ctx: VerifyContext, path: string, material: KeyMaterial, size: number, settings: Required<CipherSettings>): Promise<boolean> {
  if (size < 2 * settings.pageSize) return false;
  const raw = await rawKeyFor(ctx, material, path).catch(() => material);
  if (raw.key === undefined) return false;
  const read = async (offset: number, into: Uint8Array) => {
    const bytes = await ctx.files.read(path, offset, into.length);
    into.set(bytes);
    return bytes.length;
  };
  return (await checkPageHmacs(read, size, raw.key, settings, undefined, 2).catch(() => ({ ok: false }))).ok;
}

const V3_HINT = 'this may be a SQLCipher 3 database: try compatibility: 3 (CLI --compat 3)';

/**
 * When a file fails under SQLCipher 4 settings: does page 1 carry the HMAC
 * SQLCipher 3 would write under this secret? Costs one PBKDF2-SHA1 of 64000
 * iterations for a passphrase (about 50 ms measured in Node on 2 cores), nothing more for a raw key.
 * Only asked when no compatibility was chosen.
 */
async function isSqlcipher3(ctx: VerifyContext, path: string, material: KeyMaterial, size: number, settings: Required<CipherSettings>): Promise<boolean> {
  if (ctx.profile.cipher.compatibility !== undefined || settings.plaintextHeaderSize > 0) return false;
  const v3 = SQLCIPHER3_DEFAULTS;
  if (size < v3.pageSize || size % v3.pageSize !== 0) return false;
  try {
    const salt = await ctx.files.read(path, 0, SALT_BYTES);
    const key = material.key ?? (await deriveKey(material, salt, v3));
    const read = async (offset: number, into: Uint8Array) => {
      const bytes = await ctx.files.read(path, offset, into.length);
      into.set(bytes);
      return bytes.length;
    };
    return (await checkPageHmacs(read, v3.pageSize, key, v3)).ok;
  } catch {
    return false;
  }
}
