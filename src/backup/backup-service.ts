/**
 * Encrypted backups of one database: export, verify, rotate, restore, and
 * change the password without leaving old-password backups behind.
 *
 * Runtime-agnostic: storage goes through a FileStore, databases through the
 * `open` function of the host. Nothing here imports `node:*` or touches
 * `navigator`.
 */
import { deriveKey, resolveSettings, SALT_BYTES, type KeyMaterial } from '../engine/cipher.ts';
import type { Database, OpenOptions } from '../engine/database.ts';
import {
  CipherkeepError, CorruptDatabaseError, DatabaseNotFoundError, InvalidArgumentError, NotEncryptedError, StorageFullError, WrongKeyError,
} from '../engine/errors.ts';
import type { FileInfo, FileStore } from '../files/file-store.ts';
import { copyFile } from '../files/file-store.ts';
import { KeyedMutex } from '../files/keyed-mutex.ts';
import { sqlcipher4, type KeyProfile } from './key-profiles.ts';
import { backupName, parseBackupName, TMP_SUFFIX, utcDay, validatePrefix } from './names.ts';
import { checkPageHmacs } from './page-check.ts';

const DAY_MS = 86_400_000;

export interface Progress {
  phase: 'export' | 'verify' | 'copy';
  bytesDone: number;
  bytesTotal: number;
}
/**
 * Progress callback. During export and copy a returned promise is awaited
 * before the next chunk (back-pressure: a UI, or a test, can act between
 * chunks); during verify SQLite is mid-read, so it is called without waiting.
 */
export type OnProgress = (progress: Progress) => void | Promise<void>;

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
}

/** What a host provides: its file store and its way to open databases. */
export interface BackupHost {
  files: FileStore;
  open(path: string, options: OpenOptions): Promise<Database>;
}

export type BackupServiceOptions = KeyMaterial & {
  databasePath: string;
  backupDir: string;
  /** Newest backups kept by count (default 1). 0 keeps none: see README. */
  maxBackups?: number;
  /** Backups older than this many days are deleted, except the newest (default 7). */
  maxAgeDays?: number;
  /** Backup file names start with `<prefix>_` (default 'backup'). */
  prefix?: string;
  /** How the key is made from the secret (default SQLCipher 4). */
  keyProfile?: KeyProfile;
  /** The current time; inject for tests of the daily and age rules. */
  clock?: () => Date;
  logger?: Logger;
  /** How long to wait for another backup operation on the same database (default 60 s). */
  lockTimeoutMs?: number;
  host: BackupHost;
};

export interface BackupResult {
  success: boolean;
  backupPath?: string;
  /** A clear message; never contains a key or password. */
  error?: string;
  /** Stable error code (`CipherkeepError.code`) when `success` is false. */
  errorCode?: string;
  sizeBytes: number;
  /** True when today's existing backup was returned instead of a new one. */
  existing?: boolean;
}

/** How deep createBackup checks its copy: see #verify. verifyBackup, restore and import always run 'full'. */
export type VerifyDepth = 'pages' | 'full';

export type VerifyFailure = 'missing' | 'empty' | 'truncated' | 'not-encrypted' | 'wrong-key' | 'corrupt';
export type VerifyResult = { ok: true; pages: number; tables: number } | { ok: false; reason: VerifyFailure; detail: string };

export interface BackupInfo {
  filename: string;
  path: string;
  sizeBytes: number;
  /** ISO 8601, UTC: the creation time recorded in the name. */
  createdAt: string;
}

export interface RestoreResult {
  success: boolean;
  error?: string;
  errorCode?: string;
  /** Where the database that was replaced now is. */
  preRestorePath?: string;
}

const silent: Logger = { debug() {}, info() {}, warn() {} };

/** One lock table for every service in this realm; entries vanish when released. */
const inProcess = new KeyedMutex();

interface Listed extends FileInfo {
  path: string;
  createdAt: Date;
  seq: number;
  tmp: boolean;
}

export class BackupService {
  readonly databasePath: string;
  readonly backupDir: string;
  readonly prefix: string;
  readonly maxBackups: number;
  readonly maxAgeDays: number;
  readonly keyProfile: KeyProfile;
  #secret: KeyMaterial;
  readonly #files: FileStore;
  readonly #host: BackupHost;
  readonly #clock: () => Date;
  readonly #log: Logger;
  readonly #lockTimeoutMs: number;

  constructor(options: BackupServiceOptions) {
    this.prefix = validatePrefix(options.prefix ?? 'backup');
    this.maxBackups = nonNegativeInteger(options.maxBackups ?? 1, 'maxBackups');
    this.maxAgeDays = nonNegativeInteger(options.maxAgeDays ?? 7, 'maxAgeDays');
    if (!options.databasePath || !options.backupDir) throw new InvalidArgumentError('databasePath and backupDir are required');
    this.databasePath = options.databasePath;
    this.backupDir = options.backupDir;
    this.keyProfile = options.keyProfile ?? sqlcipher4;
    this.#secret = options.key !== undefined ? { key: options.key } : { password: options.password! };
    this.#host = options.host;
    this.#files = options.host.files;
    this.#clock = options.clock ?? (() => new Date());
    this.#log = options.logger ?? silent;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 60_000;
  }

  /**
   * Creates a verified backup, at most one per UTC day unless `force`: if
   * today's exists it is returned. Failures come back as `success: false`,
   * never as a throw, and leave no `.tmp` or partial `.db` behind.
   */
  createBackup(options: { force?: boolean; onProgress?: OnProgress; verify?: VerifyDepth } = {}): Promise<BackupResult> {
    return this.#asResult(() =>
      this.#locked(async () => {
        if (!options.force) {
          const today = utcDay(this.#clock());
          const existing = (await this.#list()).find((b) => !b.tmp && utcDay(b.createdAt) === today);
          if (existing) {
            this.#log.debug(`backup already exists for today (${existing.name}), skipping`);
            return { success: true, backupPath: existing.path, sizeBytes: existing.size, existing: true };
          }
        }
        const result = await this.#create(options.onProgress, options.verify);
        await this.#cleanup();
        return result;
      }),
    );
  }

  /** Opens a backup with the key, runs `PRAGMA quick_check` and reads every table's first row. */
  async verifyBackup(path: string, options: { onProgress?: OnProgress } = {}): Promise<VerifyResult> {
    let material: KeyMaterial;
    try {
      material = await this.keyProfile.keyFor(this.#secret, this.#files, path);
    } catch (e) {
      if (!(await this.#files.stat(path))) return { ok: false, reason: 'missing', detail: `no such file: ${path}` };
      return { ok: false, reason: 'wrong-key', detail: messageOf(e) };
    }
    return this.#verify(path, material, options.onProgress);
  }

  /**
   * Applies retention: count, age, stale `.tmp` files. Returns how many backups were deleted.
   * A failure (the lock held elsewhere …) is logged and counts 0, or with `throwOnError` thrown.
   */
  cleanupOldBackups(options: { throwOnError?: boolean } = {}): Promise<number> {
    return this.#locked(() => this.#cleanup()).catch((e) => {
      if (options.throwOnError) throw e;
      this.#log.warn(`backup cleanup failed: ${messageOf(e)}`);
      return 0;
    });
  }

  /** Backups, newest first. */
  async listBackups(): Promise<BackupInfo[]> {
    return (await this.#list()).filter((b) => !b.tmp).map((b) => ({
      filename: b.name,
      path: b.path,
      sizeBytes: b.size,
      createdAt: b.createdAt.toISOString(),
    }));
  }

  async getLatestBackup(): Promise<BackupInfo | null> {
    return (await this.listBackups())[0] ?? null;
  }

  /**
   * Replaces every backup with one fresh one. The new backup is written and
   * verified first and the old files deleted after, so there is always at
   * least one good backup; if the new one fails, the old ones stay.
   */
  purgeAndRefresh(options: { onProgress?: OnProgress } = {}): Promise<BackupResult> {
    return this.#asResult(() => this.#locked(() => this.#purgeAndRefresh(false, options.onProgress)));
  }

  /**
   * Changes the database's password and replaces every backup with one under
   * the new password. SQLite's rekey is one transaction, so a crash leaves the
   * database under exactly one of the two passwords; calling again with the
   * same new password after a crash finishes the job. Once this returns, no
   * backup readable with the old password remains — even if the new backup
   * failed (then there are none, and the result says so).
   */
  changePassword(newSecret: KeyMaterial, options: { onProgress?: OnProgress } = {}): Promise<BackupResult> {
    return this.#asResult(() =>
      this.#locked(async () => {
        const next = newSecret.key !== undefined ? { key: newSecret.key } : { password: newSecret.password! };
        let db: Database | null = null;
        try {
          db = await this.#openSource(this.#secret);
        } catch (e) {
          if (!(e instanceof WrongKeyError)) throw e;
          // An earlier call was interrupted after the new file was in place.
          await (await this.#openSource(next)).close();
        }
        if (db) await this.#rekeyByReplacement(db, next);
        this.#secret = next;
        this.#log.info(`password changed for ${this.#files.basename(this.databasePath)}; replacing backups`);
        return this.#purgeAndRefresh(true, options.onProgress);
      }),
    );
  }

  /**
   * Rekeys a snapshot copy beside the database, verifies it under the new
   * key, and renames it over the database: at every instant the file on disk
   * is whole and under exactly one password. (An in-place rekey that is cut
   * short leaves old- and new-key pages mixed.) Closes `db`.
   */
  async #rekeyByReplacement(db: Database, next: KeyMaterial): Promise<void> {
    const staged = `${this.databasePath}.rekey${TMP_SUFFIX}`;
    const side = (p: string) => [p, `${p}-journal`, `${p}-wal`];
    await this.#removeAll(side(staged));
    try {
      try {
        await this.#checkFreeSpace(this.#files.dirname(this.databasePath), (await this.#files.stat(this.databasePath))?.size ?? 0);
        await this.#export(db, staged);
      } finally {
        await db.close();
      }
      const oldKey = await this.#rawKey(await this.keyProfile.keyFor(this.#secret, this.#files, this.databasePath), this.databasePath);
      const copy = await this.#host.open(staged, { ...oldKey, cipher: this.keyProfile.cipher });
      try {
        await copy.rekey(await this.keyProfile.keyFor(next, this.#files, this.databasePath));
      } finally {
        await copy.close();
      }
      const newKey = await this.#rawKey(await this.keyProfile.keyFor(next, this.#files, this.databasePath), staged);
      const check = await this.#verify(staged, newKey, undefined, 'pages');
      if (!check.ok) throw new CorruptDatabaseError(`the rekeyed copy failed verification (${check.reason}): ${check.detail}`);
      await this.#files.restrictToOwner(staged, 'file');
      // Journals of the old file must not be replayed into the new one.
      await this.#removeAll([`${this.databasePath}-wal`, `${this.databasePath}-shm`, `${this.databasePath}-journal`]);
      await this.#files.rename(staged, this.databasePath);
    } finally {
      await this.#removeAll(side(staged));
    }
  }

  /**
   * Accepts a backup made elsewhere (a download, another device): its bytes
   * are written as a `.tmp`, verified with this service's key, and only then
   * renamed into the backup directory under a fresh name. Profiles whose key
   * needs sidecar files cannot import a bare file.
   */
  importBackup(source: AsyncIterable<Uint8Array>, options: { onProgress?: OnProgress; sizeHint?: number } = {}): Promise<BackupResult> {
    return this.#asResult(() =>
      this.#locked(async () => {
        if (this.keyProfile.sidecars.length) throw new InvalidArgumentError(`the ${this.keyProfile.name} key profile cannot import a file without its ${this.keyProfile.sidecars.join(', ')}`);
        await this.#files.ensureDir(this.backupDir);
        await this.#files.restrictToOwner(this.backupDir, 'dir');
        if (options.sizeHint !== undefined) await this.#checkFreeSpace(this.backupDir, options.sizeHint);
        const finalPath = await this.#freshName();
        const tmpPath = `${finalPath}${TMP_SUFFIX}`;
        try {
          const writer = await this.#files.create(tmpPath);
          let done = 0;
          try {
            for await (const chunk of source) {
              await writer.write(chunk);
              done += chunk.length;
              await options.onProgress?.({ phase: 'copy', bytesDone: done, bytesTotal: options.sizeHint ?? done });
            }
            await writer.close();
          } catch (e) {
            await writer.abort();
            throw e;
          }
          const check = await this.verifyBackup(tmpPath, options);
          if (!check.ok) throw new CorruptDatabaseError(`imported file failed verification (${check.reason}): ${check.detail}`);
          await this.#files.restrictToOwner(tmpPath, 'file');
          await this.#files.rename(tmpPath, finalPath);
          this.#log.info(`imported backup ${this.#files.basename(finalPath)} (${done} bytes)`);
          return { success: true, backupPath: finalPath, sizeBytes: done };
        } catch (e) {
          await this.#removeAll([tmpPath, finalPath]);
          throw e;
        }
      }),
    );
  }

  /** The bytes of a backup, in chunks of bounded size (for downloads). */
  async *readBackup(path: string, chunkBytes = 1 << 20): AsyncGenerator<Uint8Array> {
    if (!parseBackupName(this.prefix, this.#files.basename(path)) || this.#files.dirname(path) !== this.#files.dirname(this.#files.join(this.backupDir, 'x'))) {
      throw new InvalidArgumentError(`not a backup of this service: ${path}`);
    }
    for (let offset = 0; ; ) {
      const chunk = await this.#files.read(path, offset, chunkBytes);
      if (chunk.length === 0) return;
      offset += chunk.length;
      yield chunk;
    }
  }

  /**
   * Replaces the database with a backup: the backup is verified, the current
   * database is kept as `<database>.pre-restore-<time>`, the backup is copied
   * beside the database, verified again, and renamed over it in one step.
   * Close every connection to the database first.
   */
  restoreBackup(path: string, options: { onProgress?: OnProgress } = {}): Promise<RestoreResult> {
    return this.#locked(async (): Promise<RestoreResult> => {
      const check = await this.verifyBackup(path, options);
      if (!check.ok) return { success: false, error: `backup failed verification (${check.reason}): ${check.detail}`, errorCode: 'VERIFY_FAILED' };
      const material = await this.keyProfile.keyFor(this.#secret, this.#files, path);
      const db = this.databasePath;
      const stamp = backupName('pre-restore', this.#clock()).slice('pre-restore_'.length, -'.db'.length);
      const preRestorePath = (await this.#files.stat(db)) ? `${db}.pre-restore-${stamp}` : undefined;
      if (preRestorePath) await this.#keepCurrent(preRestorePath);

      const staged = `${db}.restore${TMP_SUFFIX}`;
      const stagedSidecars = this.keyProfile.sidecars.map((s) => [`${path}${s}`, `${staged}${s}`, `${db}${s}`] as const);
      await this.#removeAll([staged, ...stagedSidecars.map(([, t]) => t)]);
      try {
        const total = (await this.#files.stat(path))?.size ?? 0;
        await copyFile(this.#files, path, staged, (done) => options.onProgress?.({ phase: 'copy', bytesDone: done, bytesTotal: total }));
        for (const [from, to] of stagedSidecars) await copyFile(this.#files, from, to);
        const again = await this.#verify(staged, material);
        if (!again.ok) throw new CorruptDatabaseError(`the copied backup failed verification (${again.reason}): ${again.detail}`);
        // Journals of the replaced database must not be replayed into the restored one.
        await this.#removeAll([`${db}-wal`, `${db}-shm`, `${db}-journal`]);
        for (const [, staging, final] of stagedSidecars) await this.#files.rename(staging, final);
        await this.#files.restrictToOwner(staged, 'file');
        await this.#files.rename(staged, db);
      } catch (e) {
        await this.#removeAll([staged, ...stagedSidecars.map(([, t]) => t)]);
        throw e;
      }
      this.#log.info(`restored ${this.#files.basename(db)} from ${this.#files.basename(path)}`);
      return { success: true, preRestorePath };
    }).catch((e) => ({ success: false, error: messageOf(e), errorCode: codeOf(e) }));
  }

  // ---- internals: every method below runs with the lock held ----

  async #create(onProgress?: OnProgress, depth: VerifyDepth = 'pages'): Promise<BackupResult> {
    const source = await this.#files.stat(this.databasePath);
    if (!source) throw new DatabaseNotFoundError(`database not found: ${this.databasePath}`);
    await this.#files.ensureDir(this.backupDir);
    await this.#files.restrictToOwner(this.backupDir, 'dir');
    await this.#checkFreeSpace(this.backupDir, source.size);

    const finalPath = await this.#freshName();
    const tmpPath = `${finalPath}${TMP_SUFFIX}`;
    const sidecars = this.keyProfile.sidecars.map((s) => [`${this.databasePath}${s}`, `${finalPath}${s}`] as const);
    // The copy has the source's salt, so one key derivation serves both opens.
    const material = await this.#rawKey(await this.keyProfile.keyFor(this.#secret, this.#files, this.databasePath), this.databasePath);
    const started = Date.now();
    try {
      const db = await this.#host.open(this.databasePath, { ...material, cipher: this.keyProfile.cipher });
      try {
        await onProgress?.({ phase: 'export', bytesDone: 0, bytesTotal: source.size });
        await this.#export(db, tmpPath, onProgress);
      } finally {
        await db.close();
      }
      for (const [from, to] of sidecars) {
        await copyFile(this.#files, from, to);
        await this.#files.restrictToOwner(to, 'file');
      }
      const check = await this.#verify(tmpPath, material, onProgress, depth);
      if (!check.ok) throw new CorruptDatabaseError(`backup verification failed (${check.reason}): ${check.detail}`);
      await this.#files.restrictToOwner(tmpPath, 'file');
      const size = (await this.#files.stat(tmpPath))?.size ?? 0;
      await this.#files.rename(tmpPath, finalPath);
      const ms = Date.now() - started;
      this.#log.info(`created backup ${this.#files.basename(finalPath)} (${size} bytes) in ${ms} ms`);
      return { success: true, backupPath: finalPath, sizeBytes: size };
    } catch (e) {
      await this.#removeAll([tmpPath, finalPath, ...sidecars.map(([, to]) => to)]);
      throw e;
    }
  }

  /** Copies a consistent snapshot of the database's encrypted pages to `target`. */
  async #export(db: Database, target: string, onProgress?: OnProgress): Promise<void> {
    const files = this.#files;
    if (files.copyPrefix) {
      await db.holdSnapshot(async ({ bytes }) => {
        await files.copyPrefix!(this.databasePath, target, bytes);
        await onProgress?.({ phase: 'export', bytesDone: bytes, bytesTotal: bytes });
      });
      return;
    }
    const writer = await files.create(target);
    try {
      await db.snapshot(async (chunk, done, total) => {
        await writer.write(chunk);
        await onProgress?.({ phase: 'export', bytesDone: done, bytesTotal: total });
      });
      await writer.close();
    } catch (e) {
      await writer.abort();
      throw e;
    }
  }

  /**
   * Both depths open the file with the key, check the HMAC of every page (in
   * use or free: proof that each page is the one SQLite wrote under this
   * key, without decrypting it), match the page count to the file size and
   * read the first row of every table. 'full' adds PRAGMA quick_check in the
   * engine (decrypts every page in use and checks the b-trees: catches a
   * source that was already damaged); 'pages' skips it.
   */
  async #verify(path: string, material: KeyMaterial, onProgress?: OnProgress, depth: VerifyDepth = 'full'): Promise<VerifyResult> {
    const info = await this.#files.stat(path);
    if (!info) return { ok: false, reason: 'missing', detail: `no such file: ${path}` };
    if (info.size === 0) return { ok: false, reason: 'empty', detail: `empty file: ${path}` };
    const settings = resolveSettings(this.keyProfile.cipher);
    const pageSize = settings.pageSize;
    if (info.size % pageSize !== 0) {
      return { ok: false, reason: 'truncated', detail: `${info.size} bytes is not a whole number of ${pageSize}-byte pages` };
    }
    const report = (done: number) =>
      Promise.resolve(onProgress?.({ phase: 'verify', bytesDone: Math.min(done, info.size), bytesTotal: info.size })).catch(() => {});
    let db: Database | undefined;
    await report(0);
    try {
      // Derive once: the same raw key opens the file and checks its pages.
      const raw = await this.#rawKey(material, path);
      db = await this.#host.open(path, { ...raw, cipher: this.keyProfile.cipher, busyTimeoutMs: 0 });
      const key = raw.key;
      if (key !== undefined) {
        const opened = db;
        const pages = await checkPageHmacs((o, into) => opened.readRaw(o, into), info.size, key, settings, depth === 'pages' ? report : undefined);
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
      const tables = await db.query<{ name: string }>("SELECT name FROM sqlite_schema WHERE type = 'table'");
      for (const { name } of tables) await db.query(`SELECT * FROM "${name.replace(/"/g, '""')}" LIMIT 1`);
      const [{ n: pages } = { n: 0 }] = await db.query<{ n: number }>('SELECT page_count AS n FROM pragma_page_count()');
      if (Number(pages) * pageSize !== info.size) {
        return { ok: false, reason: 'truncated', detail: `file has ${info.size / pageSize} pages, the database ${pages}` };
      }
      return { ok: true, pages: Number(pages), tables: tables.length };
    } catch (e) {
      if (e instanceof WrongKeyError) return { ok: false, reason: 'wrong-key', detail: e.message };
      if (e instanceof NotEncryptedError) return { ok: false, reason: 'not-encrypted', detail: e.message };
      return { ok: false, reason: 'corrupt', detail: messageOf(e) };
    } finally {
      await db?.close().catch(() => {});
    }
  }

  async #cleanup(now = this.#clock()): Promise<number> {
    let deleted = 0;
    const all = await this.#list();
    // Every writer of a .tmp holds this lock (in this process and across processes
    // or tabs), and we hold it now: any .tmp here was left by a run that died.
    // (The reference waited an hour because its lock did not reach other processes.)
    for (const tmp of all.filter((b) => b.tmp)) {
      if (await this.#removeQuietly(tmp.path)) this.#log.info(`removed temp file left by an interrupted run: ${tmp.name}`);
    }
    const backups = all.filter((b) => !b.tmp);
    for (const [i, b] of backups.entries()) {
      const tooMany = i >= this.maxBackups;
      // The newest backup is never deleted by age alone: an old backup beats none.
      const tooOld = i > 0 && now.getTime() - b.createdAt.getTime() > this.maxAgeDays * DAY_MS;
      if (!tooMany && !tooOld) continue;
      if (await this.#removeWithSidecars(b.path)) {
        deleted++;
        this.#log.debug(`deleted backup ${b.name}: ${tooMany ? `beyond the newest ${this.maxBackups}` : `older than ${this.maxAgeDays} days`}`);
      }
    }
    if (deleted) this.#log.info(`cleaned up ${deleted} old backups`);
    return deleted;
  }

  async #purgeAndRefresh(purgeOnFailure: boolean, onProgress?: OnProgress): Promise<BackupResult> {
    const old = await this.#list();
    let result: BackupResult;
    try {
      result = await this.#create(onProgress);
    } catch (e) {
      result = { success: false, error: messageOf(e), errorCode: codeOf(e), sizeBytes: 0 };
    }
    if (result.success || purgeOnFailure) {
      for (const b of old) await this.#removeWithSidecars(b.path);
      this.#log.info(`purged ${old.length} earlier backup files`);
    }
    if (!result.success && purgeOnFailure) {
      result.error = `${result.error}; earlier backups under the old password were deleted, so no backup exists now`;
    }
    return result;
  }

  /** Keeps the database about to be replaced: a consistent snapshot if it opens, its raw files if not. */
  async #keepCurrent(target: string): Promise<void> {
    try {
      const db = await this.#openSource(this.#secret);
      try {
        await this.#export(db, target);
      } finally {
        await db.close();
      }
    } catch (e) {
      this.#log.warn(`current database does not open (${codeOf(e)}); keeping its raw files`);
      await this.#removeAll([target]);
      await copyFile(this.#files, this.databasePath, target);
      if (await this.#files.stat(`${this.databasePath}-wal`)) await copyFile(this.#files, `${this.databasePath}-wal`, `${target}-wal`);
    }
    await this.#files.restrictToOwner(target, 'file');
    for (const s of this.keyProfile.sidecars) {
      if (await this.#files.stat(`${this.databasePath}${s}`)) await copyFile(this.#files, `${this.databasePath}${s}`, `${target}${s}`);
    }
  }

  /** The raw key SQLCipher derives for the file at `path` (its salt is its first 16 bytes). */
  async #rawKey(material: KeyMaterial, path: string): Promise<KeyMaterial> {
    if (material.key !== undefined) return material;
    const salt = await this.#files.read(path, 0, SALT_BYTES);
    if (salt.length < SALT_BYTES) return material; // let open() name the problem
    return { key: await deriveKey(material, salt, resolveSettings(this.keyProfile.cipher)) };
  }

  async #openSource(secret: KeyMaterial): Promise<Database> {
    const material = await this.keyProfile.keyFor(secret, this.#files, this.databasePath);
    return this.#host.open(this.databasePath, { ...material, cipher: this.keyProfile.cipher });
  }

  /** Fails closed: a copy we cannot be sure fits (twice its size) is not attempted. */
  async #checkFreeSpace(dir: string, size: number): Promise<void> {
    let free: number;
    try {
      free = await this.#files.freeSpace(dir);
    } catch (e) {
      throw new CipherkeepError(`could not verify free space in ${dir}: ${messageOf(e)}`);
    }
    if (free < size * 2) {
      throw new StorageFullError(`insufficient space in ${dir}: need ${size * 2} bytes (twice the database), have ${free}`);
    }
  }

  /**
   * A name after every existing one of the same second: never a freed lower
   * number, which would sort as the oldest and be rotated away at once.
   */
  async #freshName(): Promise<string> {
    const now = this.#clock();
    const stamp = backupName(this.prefix, now);
    let seq = 0;
    for (const f of await this.#files.list(this.backupDir, `${this.prefix}_`)) {
      const parsed = parseBackupName(this.prefix, f.name);
      if (parsed && backupName(this.prefix, parsed.createdAt) === stamp) seq = Math.max(seq, parsed.seq + 1);
    }
    return this.#files.join(this.backupDir, backupName(this.prefix, now, seq));
  }

  /** This service's backups and temp files, newest first. */
  async #list(): Promise<Listed[]> {
    const entries: Listed[] = [];
    for (const f of await this.#files.list(this.backupDir, `${this.prefix}_`)) {
      const parsed = parseBackupName(this.prefix, f.name);
      if (parsed) entries.push({ ...f, ...parsed, path: this.#files.join(this.backupDir, f.name) });
    }
    return entries.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || b.seq - a.seq);
  }

  async #removeWithSidecars(path: string): Promise<boolean> {
    const removed = await this.#removeQuietly(path);
    for (const s of this.keyProfile.sidecars) await this.#removeQuietly(`${path}${s}`);
    return removed;
  }

  async #removeAll(paths: string[]): Promise<void> {
    for (const p of paths) await this.#removeQuietly(p);
  }

  // Files may vanish under us (another cleanup); that is not an error.
  async #removeQuietly(path: string): Promise<boolean> {
    try {
      return await this.#files.remove(path);
    } catch (e) {
      this.#log.warn(`could not delete ${this.#files.basename(path)}: ${messageOf(e)}`);
      return false;
    }
  }

  /** In-process lock first (no polling between services here), then the host's cross-process one. */
  async #locked<T>(fn: () => Promise<T>): Promise<T> {
    const releaseLocal = await inProcess.acquire(this.databasePath, this.#lockTimeoutMs);
    try {
      const releaseShared = await this.#files.lock(`${this.databasePath}.backup-lock`, this.#lockTimeoutMs);
      try {
        return await fn();
      } finally {
        await releaseShared();
      }
    } finally {
      await releaseLocal();
    }
  }

  async #asResult(fn: () => Promise<BackupResult>): Promise<BackupResult> {
    try {
      return await fn();
    } catch (e) {
      this.#log.warn(`backup operation failed: ${messageOf(e)}`);
      return { success: false, error: messageOf(e), errorCode: codeOf(e), sizeBytes: 0 };
    }
  }
}

function nonNegativeInteger(n: number, name: string): number {
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
  return n;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function codeOf(e: unknown): string {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}
