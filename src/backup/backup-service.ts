/**
 * Encrypted backups of one database: export, verify, rotate, restore, and
 * change the password without leaving old-password backups behind.
 *
 * Runtime-agnostic: storage goes through a FileStore, databases through the
 * `open` function of the host. Nothing here imports `node:*` or touches
 * `navigator`.
 */
import type { KeyMaterial } from '../engine/cipher.ts';
import type { Database, JournalMode, OpenOptions } from '../engine/database.ts';
import {
  CipherkeepError, CorruptDatabaseError, DatabaseNotFoundError, InUseError, InvalidArgumentError, OtherDatabaseError, StorageFullError, WrongKeyError,
} from '../engine/errors.ts';
import type { FileStore, HeldLock } from '../files/file-store.ts';
import { copyFile } from '../files/file-store.ts';
import { KeyedMutex } from '../files/keyed-mutex.ts';
import { sqlcipher4, type KeyProfile } from './key-profiles.ts';
import { backupName, tmpPath, utcDay, validatePrefix } from './names.ts';
import { writeStream } from './intake.ts';
import { fromHostError } from '../engine/error-map.ts';
import { DatabaseCopies } from './copies.ts';
import { Catalog, identityOf, retentionVictims, sameIdentity, type Listed } from './catalog.ts';
import { discard, SIDE_FILES } from './snapshot.ts';
import { rawKeyFor, verifyFile, type VerifyContext, type VerifyDepth, type VerifyResult } from './verify.ts';

export type { VerifyDepth, VerifyFailure, VerifyResult } from './verify.ts';

/** The backup directory's lock, beside the backups (never listed: not a backup name). */
const DIR_LOCK = '.cipherkeep-lock';

/** The locks every operation that changes files holds: the database's and the backup directory's. */
interface Held {
  db: HeldLock;
  /** Names the temporary files in the backup directory. */
  dir: HeldLock;
  /** Throws LockLostError if either was taken over. */
  check(): Promise<void>;
}

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
  /**
   * Optional: a reader's lock on the database among the host engine's own
   * connections (HostVFS.readLock), held while a snapshot is copied, so
   * writers in this process wait instead of disturbing the copy.
   */
  readLock?(path: string, timeoutMs: number): Promise<() => void>;
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
  /** A cross-process lock not refreshed for this long is taken over (default 60 s; hosts with lock files only). */
  lockStaleMs?: number;
  /** How long to keep retrying a snapshot that another process's writes keep disturbing, before BUSY (default 30 s). */
  snapshotTimeoutMs?: number;
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
  readonly #lockStaleMs: number | undefined;
  readonly #snapshotTimeoutMs: number | undefined;
  readonly #ctx: VerifyContext;
  readonly #catalog: Catalog;
  readonly #copies: DatabaseCopies;

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
    this.#lockStaleMs = options.lockStaleMs;
    this.#snapshotTimeoutMs = options.snapshotTimeoutMs;
    this.#ctx = { files: this.#files, open: (path, o) => this.#host.open(path, o), profile: this.keyProfile };
    this.#copies = new DatabaseCopies({ ...this.#ctx, databasePath: this.databasePath, log: this.#log, snapshotTimeoutMs: options.snapshotTimeoutMs, readLock: options.host.readLock?.bind(options.host) });
    this.#catalog = new Catalog(this.#files, this.backupDir, this.prefix, (name, why) => this.#log.warn(`skipped ${name} in the backup directory: ${why}`));
  }

  /**
   * Creates a verified backup, at most one per UTC day unless `force`: if
   * today's exists it is returned. Failures come back as `success: false`,
   * never as a throw, and leave no `.tmp` or partial `.db` behind. The
   * database is only read, never written: see snapshot.ts.
   */
  createBackup(options: { force?: boolean; onProgress?: OnProgress; verify?: VerifyDepth } = {}): Promise<BackupResult> {
    return this.#asResult(() =>
      this.#locked(async (held) => {
        if (!(await this.#files.stat(this.databasePath))) throw new DatabaseNotFoundError(`database not found: ${this.databasePath}`);
        if (!options.force) {
          const today = utcDay(this.#clock());
          const existing = (await this.#list()).find((b) => !b.tmp && utcDay(b.createdAt) === today);
          // Today's backup is trusted only after a look: whole pages, every page's HMAC.
          const check = existing && (await this.#verify(existing.path, await this.keyProfile.keyFor(this.#secret, this.#files, existing.path), undefined, 'pages'));
          if (existing && check?.ok) {
            this.#log.debug(`backup already exists for today (${existing.name}), skipping`);
            return { success: true, backupPath: existing.path, sizeBytes: existing.size, existing: true };
          }
          if (existing && check && !check.ok) this.#log.warn(`today's backup ${existing.name} failed its check (${check.reason}: ${check.detail}); making a fresh one`);
        }
        const result = await this.#create(held, options.onProgress, options.verify);
        await this.#cleanup(held);
        return result;
      }),
    );
  }

  /**
   * Opens a backup read-only with the key, checks every page's HMAC, runs
   * `PRAGMA quick_check` and reads every table's first row. Writes nothing.
   */
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
    return this.#locked((held) => this.#cleanup(held)).catch((e) => {
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
    return this.#asResult(() => this.#locked((held) => this.#purgeAndRefresh(held, false, options.onProgress)));
  }

  /**
   * Changes the database's password and replaces every backup with one under
   * the new password. Refuses (IN_USE) while another connection or process
   * has the database open. The database is replaced whole, so a crash leaves
   * it under exactly one of the two passwords; calling again with the same
   * new password after a crash finishes the job. Once this returns, no
   * backup readable with the old password remains — even if the new backup
   * failed (then there are none, and the result says so).
   */
  changePassword(newSecret: KeyMaterial, options: { onProgress?: OnProgress } = {}): Promise<BackupResult> {
    return this.#asResult(() =>
      this.#locked(async (held) => {
        const next = newSecret.key !== undefined ? { key: newSecret.key } : { password: newSecret.password! };
        await this.#refuseIfInUse('change the password of');
        if (await this.#rekeyByReplacement(held, next)) this.#log.info(`password changed for ${this.#files.basename(this.databasePath)}; replacing backups`);
        this.#secret = next;
        return this.#purgeAndRefresh(held, true, options.onProgress);
      }),
    );
  }

  /**
   * Takes a snapshot copy beside the database, rekeys and verifies the copy,
   * and renames it over the database: at every instant the file on disk is
   * whole and under exactly one password. (An in-place rekey that is cut
   * short leaves old- and new-key pages mixed.) Returns false when the
   * database is already under `next` (an earlier call was interrupted after
   * the new file was in place).
   */
  async #rekeyByReplacement(held: Held, next: KeyMaterial): Promise<boolean> {
    const staged = tmpPath(`${this.databasePath}.rekey`, held.db.token);
    try {
      await this.#checkFreeSpace(this.#files.dirname(this.databasePath), (await this.#files.stat(this.databasePath))?.size ?? 0);
      let oldKey: KeyMaterial;
      let journalMode: JournalMode;
      try {
        ({ raw: oldKey, journalMode } = await this.#copies.snapshotTo(staged, this.#secret));
      } catch (e) {
        if (!(e instanceof WrongKeyError)) throw e;
        await discard(this.#files, staged);
        await this.#copies.snapshotTo(staged, next); // throws WrongKeyError if neither password opens it
        return false;
      }
      const copy = await this.#host.open(staged, { ...oldKey, cipher: this.keyProfile.cipher });
      try {
        await copy.rekey(await this.keyProfile.keyFor(next, this.#files, this.databasePath), { keepSalt: true });
      } finally {
        await copy.close();
      }
      const newKey = await rawKeyFor(this.#ctx, await this.keyProfile.keyFor(next, this.#files, this.databasePath), staged);
      const check = await this.#verify(staged, newKey, undefined, 'pages');
      if (!check.ok) throw new CorruptDatabaseError(`the rekeyed copy failed verification (${check.reason}): ${check.detail}`);
      await this.#copies.setJournalMode(staged, newKey, journalMode);
      await this.#files.restrictToOwner(staged, 'file');
      await this.#files.matchOwner?.(this.databasePath, staged);
      await held.check();
      // Journals of the old file must not be replayed into the new one.
      await this.#removeAll(SIDE_FILES.map((s) => `${this.databasePath}${s}`));
      await this.#files.rename(staged, this.databasePath);
      return true;
    } finally {
      await discard(this.#files, staged);
    }
  }

  /**
   * Accepts a backup made elsewhere (a download, another device): its bytes
   * are written as a `.tmp`, verified with this service's key, and only then
   * renamed into the backup directory under a fresh name. Profiles whose key
   * needs sidecar files cannot import a bare file.
   */
  importBackup(
    source: AsyncIterable<Uint8Array>,
    options: { onProgress?: OnProgress; sizeHint?: number; signal?: AbortSignal; stallTimeoutMs?: number } = {},
  ): Promise<BackupResult> {
    return this.#asResult(() =>
      this.#locked(async (held) => {
        if (this.keyProfile.sidecars.length) throw new InvalidArgumentError(`the ${this.keyProfile.name} key profile cannot import a file without its ${this.keyProfile.sidecars.join(', ')}`);
        if (options.sizeHint !== undefined) await this.#checkFreeSpace(this.backupDir, options.sizeHint);
        const finalPath = await this.#catalog.freshName(this.#clock());
        const staged = tmpPath(finalPath, held.dir.token);
        try {
          const done = await writeStream(this.#files, staged, source, {
            ...options,
            onBytes: (n) => options.onProgress?.({ phase: 'copy', bytesDone: n, bytesTotal: options.sizeHint ?? n }),
          });
          const check = await this.verifyBackup(staged, options);
          if (!check.ok) throw new CorruptDatabaseError(`imported file failed verification (${check.reason}): ${check.detail}`);
          await this.#refuseOtherDatabase(staged, 'import');
          await this.#files.restrictToOwner(staged, 'file');
          await held.check();
          await this.#files.rename(staged, finalPath);
          this.#log.info(`imported backup ${this.#files.basename(finalPath)} (${done} bytes)`);
          return { success: true, backupPath: finalPath, sizeBytes: done };
        } catch (e) {
          await this.#removeAll([staged, finalPath]);
          throw e;
        }
      }),
    );
  }


  /** The bytes of a backup, in chunks of bounded size (for downloads). */
  async *readBackup(path: string, chunkBytes = 1 << 20): AsyncGenerator<Uint8Array> {
    // Only a backup this service lists: a regular file of this database, never a link named like one.
    if (!(await this.#list()).some((b) => !b.tmp && b.path === this.#files.join(this.backupDir, this.#files.basename(path)) && this.#files.dirname(path) === this.#files.dirname(b.path))) {
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
   * Refuses (IN_USE) while another connection or process has the database open.
   */
  restoreBackup(path: string, options: { onProgress?: OnProgress; allowOtherDatabase?: boolean } = {}): Promise<RestoreResult> {
    return this.#locked(async (held): Promise<RestoreResult> => {
      await this.#refuseIfInUse('restore over');
      if (!options.allowOtherDatabase) await this.#refuseOtherDatabase(path, 'restore');
      const check = await this.verifyBackup(path, options);
      if (!check.ok) return { success: false, error: `backup failed verification (${check.reason}): ${check.detail}`, errorCode: 'VERIFY_FAILED' };
      const material = await this.keyProfile.keyFor(this.#secret, this.#files, path);
      const db = this.databasePath;
      // Named to the second and after this holding: two restores never share a name, and nothing is deleted to make room.
      const stamp = backupName('pre-restore', this.#clock()).slice('pre-restore_'.length, -'.db'.length);
      const preRestorePath = (await this.#files.stat(db)) ? `${db}.pre-restore-${stamp}-${held.db.token}` : undefined;
      const journalMode = preRestorePath ? await this.#copies.keepCurrent(preRestorePath, this.#secret) : this.keyProfile.journalMode;

      const staged = tmpPath(`${db}.restore`, held.db.token);
      const stagedSidecars = this.keyProfile.sidecars.map((s) => [`${path}${s}`, `${staged}${s}`, `${db}${s}`] as const);
      try {
        const total = (await this.#files.stat(path))?.size ?? 0;
        await copyFile(this.#files, path, staged, (done) => options.onProgress?.({ phase: 'copy', bytesDone: done, bytesTotal: total }));
        for (const [from, to] of stagedSidecars) await copyFile(this.#files, from, to);
        const again = await this.#verify(staged, material);
        if (!again.ok) throw new CorruptDatabaseError(`the copied backup failed verification (${again.reason}): ${again.detail}`);
        await this.#copies.setJournalMode(staged, await rawKeyFor(this.#ctx, material, staged), journalMode);
        await held.check();
        // Journals of the replaced database must not be replayed into the restored one.
        await this.#removeAll(SIDE_FILES.map((s) => `${db}${s}`));
        for (const [, staging, final] of stagedSidecars) await this.#files.rename(staging, final);
        await this.#files.restrictToOwner(staged, 'file');
        if (preRestorePath) await this.#files.matchOwner?.(db, staged);
        await this.#files.rename(staged, db);
      } catch (e) {
        await this.#removeAll(stagedSidecars.map(([, t]) => t));
        throw e;
      } finally {
        await discard(this.#files, staged);
      }
      this.#log.info(`restored ${this.#files.basename(db)} from ${this.#files.basename(path)}`);
      return { success: true, preRestorePath };
    }).catch((e) => ({ success: false, error: messageOf(e), errorCode: codeOf(e) }));
  }

  // ---- internals: every method below runs with the lock held ----

  async #create(held: Held, onProgress?: OnProgress, depth: VerifyDepth = 'pages'): Promise<BackupResult> {
    const source = await this.#files.stat(this.databasePath);
    if (!source) throw new DatabaseNotFoundError(`database not found: ${this.databasePath}`);
    // What the database holds, not its file's size: a file padded past its last page is neither copied nor counted whole.
    const key = await this.#copies.sourceKey(this.#secret);
    const holds = await this.#copies.heldBytes(key.raw);
    await this.#checkFreeSpace(this.backupDir, Math.min(source.size, holds ?? source.size));

    const finalPath = await this.#catalog.freshName(this.#clock());
    const staged = tmpPath(finalPath, held.dir.token);
    const sidecars = this.keyProfile.sidecars.map((s) => [`${this.databasePath}${s}`, `${finalPath}${s}`] as const);
    const started = Date.now();
    // Our name under this holding: anything already there (a planted link) is in the way, not ours to keep.
    await this.#removeQuietly(staged);
    try {
      await onProgress?.({ phase: 'export', bytesDone: 0, bytesTotal: source.size });
      const { raw: material } = await this.#copies.snapshotTo(staged, this.#secret, onProgress, key);
      for (const [from, to] of sidecars) {
        await copyFile(this.#files, from, to);
        await this.#files.restrictToOwner(to, 'file');
      }
      const check = await this.#verify(staged, material, onProgress, depth);
      if (!check.ok) throw new CorruptDatabaseError(`backup verification failed (${check.reason}): ${check.detail}`);
      await this.#files.restrictToOwner(staged, 'file');
      const size = (await this.#files.stat(staged))?.size ?? 0;
      await held.check();
      await this.#files.rename(staged, finalPath);
      const ms = Date.now() - started;
      this.#log.info(`created backup ${this.#files.basename(finalPath)} (${size} bytes) in ${ms} ms`);
      return { success: true, backupPath: finalPath, sizeBytes: size };
    } catch (e) {
      await this.#removeAll([finalPath, ...sidecars.map(([, to]) => to)]);
      throw e;
    } finally {
      await discard(this.#files, staged);
    }
  }





  #verify(path: string, material: KeyMaterial, onProgress?: OnProgress, depth: VerifyDepth = 'full'): Promise<VerifyResult> {
    return verifyFile(this.#ctx, path, material, (done, total) => onProgress?.({ phase: 'verify', bytesDone: done, bytesTotal: total }), depth);
  }

  async #cleanup(held: Held, now = this.#clock()): Promise<number> {
    await this.#removeDeadTmps(held);
    let deleted = 0;
    await held.check();
    for (const { backup, why } of retentionVictims((await this.#list()).filter((b) => !b.tmp), now, this.maxBackups, this.maxAgeDays)) {
      if (await this.#removeWithSidecars(backup.path)) {
        deleted++;
        this.#log.debug(`deleted backup ${backup.name}: ${why}`);
      }
    }
    if (deleted) this.#log.info(`deleted ${deleted} old backup${deleted === 1 ? '' : 's'}`);
    return deleted;
  }

  /**
   * Every writer of a .tmp holds the directory lock and names the file after
   * its holding: a .tmp of any other holding that cannot still be at work (a
   * process paused past the stale window can) was left by a run that died.
   * (The reference waited an hour because its lock did not reach other processes.)
   */
  async #removeDeadTmps(held: Held): Promise<void> {
    await held.check();
    for (const tmp of (await this.#list()).filter((b) => b.tmp)) {
      if (tmp.token && (await held.dir.mayBeAlive(tmp.token))) continue;
      if (await this.#removeQuietly(tmp.path)) this.#log.info(`removed temp file left by an interrupted run: ${tmp.name}`);
    }
  }

  async #purgeAndRefresh(held: Held, purgeOnFailure: boolean, onProgress?: OnProgress): Promise<BackupResult> {
    // A .tmp found under the lock is dead whatever happens to the new backup.
    await this.#removeDeadTmps(held);
    const old = (await this.#list()).filter((b) => !b.tmp);
    let result: BackupResult;
    try {
      result = await this.#create(held, onProgress);
    } catch (e) {
      result = { success: false, error: messageOf(e), errorCode: codeOf(e), sizeBytes: 0 };
    }
    if (result.success || purgeOnFailure) {
      await held.check();
      for (const b of old) await this.#removeWithSidecars(b.path);
      this.#log.info(`purged ${old.length} earlier backup files`);
    }
    if (!result.success && purgeOnFailure) {
      result.error = `${result.error}; earlier backups under the old password were deleted, so no backup exists now`;
    }
    return result;
  }



  /** Operations that replace the database refuse while anyone else may have it open. */
  async #refuseIfInUse(what: string): Promise<void> {
    const reason = await this.#files.inUse?.(this.databasePath);
    if (reason) throw new InUseError(`cannot ${what} ${this.#files.basename(this.databasePath)} while it is in use: ${reason}; close it everywhere first`);
  }

  /** A backup of another database (another salt) is not put in this one's place unless the caller says so. */
  async #refuseOtherDatabase(path: string, what: string): Promise<void> {
    const [mine, theirs] = await Promise.all([identityOf(this.#files, this.databasePath), identityOf(this.#files, path)]);
    if (mine && theirs && !sameIdentity(mine, theirs)) {
      throw new OtherDatabaseError(`cannot ${what} ${this.#files.basename(path)}: it is a backup of another database (its salt differs from ${this.#files.basename(this.databasePath)}'s)${what === 'restore' ? '; pass allowOtherDatabase to restore it anyway' : ''}`);
    }
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

  /** This database's backups (by salt, see catalog.ts) and all temp files, newest first. */
  async #list(): Promise<Listed[]> {
    return this.#catalog.list(await identityOf(this.#files, this.databasePath));
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

  /**
   * In-process lock first (no polling between services here), then the
   * host's cross-process lock on the database, then on the backup directory
   * (services of two databases may share one). The directory is made (0700)
   * when missing, and refused when others could write to it.
   */
  async #locked<T>(fn: (held: Held) => Promise<T>): Promise<T> {
    const releaseLocal = await inProcess.acquire(this.databasePath, this.#lockTimeoutMs);
    try {
      const db = await this.#files.lock(`${this.databasePath}.backup-lock`, this.#lockTimeoutMs, this.#lockStaleMs);
      try {
        if (await this.#files.ensureDir(this.backupDir)) await this.#files.restrictToOwner(this.backupDir, 'dir');
        await this.#files.refuseShared?.(this.backupDir);
        const dir = await this.#files.lock(this.#files.join(this.backupDir, DIR_LOCK), this.#lockTimeoutMs, this.#lockStaleMs);
        try {
          return await fn({ db, dir, check: async () => (await db.check(), await dir.check()) });
        } finally {
          await dir.release();
        }
      } finally {
        await db.release();
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

/** The stable code of a failure: ours, or a host error (errno) mapped to one of ours, never a raw errno. */
function codeOf(e: unknown): string {
  if (e instanceof CipherkeepError) return e.code;
  return fromHostError(e, '')?.code ?? 'INTERNAL';
}
