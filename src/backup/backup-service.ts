/**
 * Encrypted backups of one database: export, verify, rotate, restore, and
 * change the password without leaving old-password backups behind.
 *
 * Runtime-agnostic: storage goes through a FileStore, databases through the
 * `open` function of the host. Nothing here imports `node:*` or touches
 * `navigator`.
 */
import type { KeyMaterial } from '../engine/cipher.ts';
import { CorruptDatabaseError, DatabaseNotFoundError, InvalidArgumentError } from '../engine/errors.ts';
import { copyFile, type FileStore } from '../files/file-store.ts';
import { sqlcipher4, type KeyProfile } from './key-profiles.ts';
import { nonNegativeInteger, tmpPath, utcDay, validatePrefix } from './names.ts';
import { writeStream } from './intake.ts';
import { DatabaseCopies, type SourceKey } from './copies.ts';
import { Catalog, identityOf, retentionVictims, type Listed } from './catalog.ts';
import { codeOf, messageOf, ServiceContext, type Held } from './context.ts';
import { rekeyByReplacement } from './rekey.ts';
import { restoreFrom, type RestoreOptions } from './restore.ts';
import { discard } from './snapshot.ts';
import type { BackupInfo, BackupResult, BackupServiceOptions, Logger, OnProgress, RestoreResult } from './types.ts';
import { withLocks } from './locking.ts';
import { DEFAULT_GENERATION_RETENTION, Generations, type LocalSnapshot } from './incremental.ts';
import type { GenerationList, GenerationVerifyResult } from './page-store/index.ts';
import type { VerifyDepth, VerifyResult } from './verify.ts';
import { Targets, type SendOptions, type TargetResult, type TargetSpec } from './targets.ts';
import { TargetBackups } from './target-ops.ts';

export type { BackupHost, BackupInfo, BackupResult, BackupServiceOptions, Logger, OnProgress, Progress, RestoreResult } from './types.ts';
export type { RestoreOptions } from './restore.ts';
export type { VerifyDepth, VerifyFailure, VerifyResult } from './verify.ts';
export type { TargetBackupInfo, TargetResult, TargetSpec } from './targets.ts';

const silent: Logger = { debug() {}, info() {}, warn() {} };

export class BackupService {
  readonly databasePath: string;
  readonly backupDir: string;
  readonly prefix: string;
  readonly maxBackups: number;
  readonly maxAgeDays: number;
  readonly keyProfile: KeyProfile;
  /** Whether createBackup makes page-store generations by default. */
  readonly incremental: boolean;
  #secret: KeyMaterial;
  readonly #files: FileStore;
  readonly #clock: () => Date;
  readonly #log: Logger;
  readonly #lockTimeoutMs: number;
  readonly #lockStaleMs: number | undefined;
  readonly #catalog: Catalog;
  readonly #c: ServiceContext;
  readonly #targets: Targets;
  /** Backups on the targets: list, verify, restore, import, prune. */
  readonly targets: TargetBackups;
  readonly #generations: Generations;

  constructor(options: BackupServiceOptions) {
    this.prefix = validatePrefix(options.prefix ?? 'backup');
    this.maxBackups = nonNegativeInteger(options.maxBackups ?? 1, 'maxBackups');
    this.maxAgeDays = nonNegativeInteger(options.maxAgeDays ?? 7, 'maxAgeDays');
    if (!options.databasePath || !options.backupDir) throw new InvalidArgumentError('databasePath and backupDir are required');
    this.databasePath = options.databasePath;
    this.backupDir = options.backupDir;
    this.keyProfile = options.keyProfile ?? sqlcipher4;
    this.#secret = options.key !== undefined ? { key: options.key } : { password: options.password! };
    this.#files = options.host.files;
    this.#clock = options.clock ?? (() => new Date());
    this.#log = options.logger ?? silent;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 60_000;
    this.#lockStaleMs = options.lockStaleMs;
    const copies = new DatabaseCopies({
      files: this.#files, open: (path, o) => options.host.open(path, o), profile: this.keyProfile,
      databasePath: this.databasePath, log: this.#log, snapshotTimeoutMs: options.snapshotTimeoutMs, readLock: options.host.readLock?.bind(options.host), checkPages: options.host.checkPages,
    });
    this.#c = new ServiceContext(this.databasePath, this.keyProfile, options.host, copies, this.#log, this.#clock);
    this.incremental = !!options.incremental;
    this.#generations = new Generations(this.#c, Generations.dirFor(this.#c, this.backupDir, this.prefix), options.generations ?? DEFAULT_GENERATION_RETENTION);
    this.#catalog = new Catalog(this.#files, this.backupDir, this.prefix, (name, why) => this.#log.warn(`skipped ${name} in the backup directory: ${why}`));
    this.#targets = new Targets(this.#c, options.targets ?? [], this.prefix, this, this.backupDir);
    this.targets = new TargetBackups(this.#targets, {
      c: this.#c, backupDir: this.backupDir, locked: (fn) => this.#locked(fn), secret: () => this.#secret,
      freshName: () => this.#catalog.freshName(this.#clock()), importBackup: (src, o) => this.importBackup(src, o),
    });
  }

  /**
   * Creates a verified backup, at most one per UTC day unless `force`: if
   * today's exists it is returned. Failures come back as `success: false`,
   * never as a throw, and leave no `.tmp` or partial `.db` behind. The
   * database is only read, never written: see snapshot.ts.
   * `incremental` (default: the service's option): a new page-store
   * generation instead, every time (no daily rule), retention over
   * generations applied as it commits.
   */
  createBackup(options: { force?: boolean; onProgress?: OnProgress; verify?: VerifyDepth; incremental?: boolean } = {}): Promise<BackupResult> {
    // The key derivation is what the backup waits for longest (~120 ms): it starts before the locks are taken (a
    // read of the salt, nothing more). The look at today's backup, when it finds one, leaves it unused.
    const secret = this.#secret;
    const early = options.incremental ?? this.incremental ? undefined : this.#c.copies.sourceKey(secret);
    early?.catch(() => {}); // used, or dropped, under the locks
    return this.#asResult(() =>
      this.#locked(async (held) => {
        if (options.incremental ?? this.incremental) {
          await this.#removeDeadTmps(held);
          const finalPath = await this.#catalog.freshName(this.#clock());
          return this.#generations.create(held, this.#secret, tmpPath(finalPath, held.dir.token), options.onProgress, false, this.#sendSnapshot(finalPath, { ...options, held }));
        }
        if (!(await this.#files.stat(this.databasePath))) throw new DatabaseNotFoundError(`database not found: ${this.databasePath}`);
        if (!options.force) {
          const today = utcDay(this.#clock());
          const existing = (await this.#list()).find((b) => !b.tmp && utcDay(b.createdAt) === today);
          // Today's backup is trusted only after a look: whole pages, every page's HMAC.
          const check = existing && (await this.#c.verify(existing.path, await this.keyProfile.keyFor(this.#secret, this.#files, existing.path, this.databasePath), undefined, 'pages'));
          if (existing && check?.ok) {
            this.#log.debug(`backup already exists for today (${existing.name}), skipping`);
            return this.#send({ success: true, backupPath: existing.path, sizeBytes: existing.size, existing: true }, { ...options, held });
          }
          if (existing && check && !check.ok) this.#log.warn(`today's backup ${existing.name} failed its check (${check.reason}: ${check.detail}); making a fresh one`);
        }
        // The early key counts only for the password it was derived from (a changePassword that held the locks first
        // changed it); one that failed then (no database yet) is derived again now.
        const key = early && secret === this.#secret ? early.catch(() => this.#c.copies.sourceKey(this.#secret)) : undefined;
        const result = await this.#send(await this.#create(held, options.onProgress, options.verify, key), { ...options, held });
        await this.#cleanup(held);
        return result;
      }),
    );
  }

  /**
   * Opens a backup read-only with the key, checks every page's HMAC, runs
   * `PRAGMA quick_check` and reads every table's first row. Writes nothing.
   */
  verifyBackup(path: string, options: { onProgress?: OnProgress } = {}): Promise<VerifyResult> {
    return this.#c.verifyWith(this.#secret, path, options.onProgress);
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

  /** Incremental backups: the generations, newest first, and any damage or rollback found in the store. */
  listGenerations(): Promise<GenerationList> {
    return this.#generations.list(this.#secret);
  }

  /** Checks a generation ('latest' or its number) without writing: its manifest, its place in the chain, every page. */
  verifyGeneration(generation = 'latest', options: { onProgress?: OnProgress } = {}): Promise<GenerationVerifyResult> {
    return this.#generations.verify(this.#secret, generation, options.onProgress);
  }

  /** Replaces the database with a generation ('latest' or its number), as restoreBackup does with a file. */
  restoreGeneration(generation: string, options: RestoreOptions = {}): Promise<RestoreResult & { generation?: string }> {
    return this.#locked((held) => this.#generations.restore(held, this.#secret, generation, options))
      .catch((e) => ({ success: false, error: messageOf(e), errorCode: codeOf(e) }));
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
   * failed (then there are none, and the result says so). Incremental
   * backups likewise: a service with `incremental` makes a full generation
   * under the new password (and deletes the full backups); any other deletes
   * the generations.
   */
  changePassword(newSecret: KeyMaterial, options: { onProgress?: OnProgress } = {}): Promise<BackupResult> {
    return this.#asResult(() =>
      this.#locked(async (held) => {
        const next = newSecret.key !== undefined ? { key: newSecret.key } : { password: newSecret.password! };
        await this.#c.refuseIfInUse('change the password of');
        if (await rekeyByReplacement(this.#c, held, this.#secret, next)) this.#log.info(`password changed for ${this.#files.basename(this.databasePath)}; replacing backups`);
        this.#secret = next;
        if (!this.incremental) {
          const result = await this.#purgeAndRefresh(held, true, options.onProgress);
          await this.#generations.purgeAll(held);
          return result;
        }
        const old = (await this.#list()).filter((b) => !b.tmp);
        const finalPath = await this.#catalog.freshName(this.#clock());
        const result = await this.#generations.afterPasswordChange(held, next, tmpPath(finalPath, held.dir.token), options.onProgress,
          this.#sendSnapshot(finalPath, { replace: true, onProgress: options.onProgress, held }));
        for (const b of old) await this.#c.removeWithSidecars(b.path);
        return this.#targets.afterPurge(result, true, held);
      }),
    );
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
        if (options.sizeHint !== undefined) await this.#c.checkFreeSpace(this.backupDir, options.sizeHint);
        const finalPath = await this.#catalog.freshName(this.#clock());
        const staged = tmpPath(finalPath, held.dir.token);
        try {
          const done = await writeStream(this.#files, staged, source, {
            ...options,
            onBytes: (n) => options.onProgress?.({ phase: 'copy', bytesDone: n, bytesTotal: options.sizeHint ?? n }),
          });
          const check = await this.verifyBackup(staged, options);
          if (!check.ok) throw new CorruptDatabaseError(`imported file failed verification (${check.reason}): ${check.detail}`);
          await this.#c.refuseOtherDatabase(staged, 'import');
          await this.#files.restrictToOwner(staged, 'file');
          await held.check();
          await this.#files.rename(staged, finalPath);
          this.#log.info(`imported backup ${this.#files.basename(finalPath)} (${done} bytes)`);
          return { success: true, backupPath: finalPath, sizeBytes: done };
        } catch (e) {
          await this.#c.removeAll([staged, finalPath]);
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
  restoreBackup(path: string, options: RestoreOptions = {}): Promise<RestoreResult> {
    return this.#locked((held) => restoreFrom(this.#c, held, this.#secret, path, options))
      .catch((e) => ({ success: false, error: messageOf(e), errorCode: codeOf(e) }));
  }

  // ---- internals: every method below runs with the lock held ----

  async #create(held: Held, onProgress?: OnProgress, depth: VerifyDepth = 'pages', sourceKey?: Promise<SourceKey>): Promise<BackupResult> {
    const source = await this.#files.stat(this.databasePath);
    if (!source) throw new DatabaseNotFoundError(`database not found: ${this.databasePath}`);
    // Derived while the file is copied (snapshotTo).
    const key = sourceKey ?? this.#c.copies.sourceKey(this.#secret);
    key.catch(() => {});
    await this.#c.copies.checkRoom(key, source.size, (bytes) => this.#c.checkFreeSpace(this.backupDir, bytes));

    const finalPath = await this.#catalog.freshName(this.#clock());
    const staged = tmpPath(finalPath, held.dir.token);
    // A database without its sidecar (the reference app's legacy ones, keyed with a fixed salt) has none to copy.
    const sidecars: Array<readonly [string, string]> = [];
    for (const s of this.keyProfile.sidecars) if (await this.#files.stat(`${this.databasePath}${s}`)) sidecars.push([`${this.databasePath}${s}`, `${finalPath}${s}`]);
    const started = Date.now();
    // Our name under this holding: anything already there (a planted link) is in the way, not ours to keep.
    await this.#c.removeQuietly(staged);
    try {
      await onProgress?.({ phase: 'export', bytesDone: 0, bytesTotal: source.size });
      const { raw: material, pages } = await this.#c.copies.snapshotTo(staged, this.#secret, { onProgress, sourceKey: key, checkPages: { onProgress: depth === 'pages' ? onProgress : undefined } });
      for (const [from, to] of sidecars) {
        await copyFile(this.#files, from, to);
        await this.#files.restrictToOwner(to, 'file');
      }
      const check = await this.#c.verify(staged, material, onProgress, depth, pages);
      if (!check.ok) throw new CorruptDatabaseError(`backup verification failed (${check.reason}): ${check.detail}`);
      await this.#files.restrictToOwner(staged, 'file');
      const size = (await this.#files.stat(staged))?.size ?? 0;
      await held.check();
      await this.#files.rename(staged, finalPath);
      const ms = Date.now() - started;
      this.#log.info(`created backup ${this.#files.basename(finalPath)} (${size} bytes) in ${ms} ms`);
      return { success: true, backupPath: finalPath, sizeBytes: size };
    } catch (e) {
      await this.#c.removeAll([finalPath, ...sidecars.map(([, to]) => to)]);
      throw e;
    } finally {
      await discard(this.#files, staged);
    }
  }

  async #cleanup(held: Held, now = this.#clock()): Promise<number> {
    await this.#removeDeadTmps(held);
    let deleted = 0;
    await held.check();
    for (const { backup, why } of retentionVictims((await this.#list()).filter((b) => !b.tmp), now, this.maxBackups, this.maxAgeDays)) {
      if (await this.#c.removeWithSidecars(backup.path)) {
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
      if (await this.#c.removeQuietly(tmp.path)) this.#log.info(`removed temp file left by an interrupted run: ${tmp.name}`);
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
      for (const b of old) await this.#c.removeWithSidecars(b.path);
      this.#log.info(`purged ${old.length} earlier backup files`);
    }
    if (!result.success && purgeOnFailure) {
      result.error = `${result.error}; earlier backups under the old password were deleted, so no backup exists now`;
    }
    return this.#targets.afterPurge(await this.#send(result, { replace: true, onProgress, held }), purgeOnFailure, held);
  }

  /** A verified local backup goes to every target; the result says per target what happened. */
  async #send(result: BackupResult, options: { force?: boolean; replace?: boolean; onProgress?: OnProgress; held?: Held }): Promise<BackupResult> {
    if (!result.success || !this.#targets.any) return result;
    return { ...result, targets: await this.#targets.send({ path: result.backupPath!, size: result.sizeBytes, secret: this.#secret }, options) };
  }

  /** Local generations: the snapshot each is made from goes to the targets as the backup `finalPath` would be (see targets.ts). */
  #sendSnapshot(finalPath: string, options: SendOptions): ((s: LocalSnapshot) => Promise<TargetResult[]>) | undefined {
    if (!this.#targets.any) return undefined;
    return (s) => this.#targets.send({ ...s, secret: this.#secret, name: this.#files.basename(finalPath), unchecked: true }, options);
  }

  /** This database's backups (by salt, see catalog.ts) and all temp files, newest first. */
  async #list(): Promise<Listed[]> {
    return this.#catalog.list(await identityOf(this.#files, this.databasePath));
  }

  #locked<T>(fn: (held: Held) => Promise<T>): Promise<T> {
    return withLocks({ files: this.#files, databasePath: this.databasePath, backupDir: this.backupDir, timeoutMs: this.#lockTimeoutMs, staleMs: this.#lockStaleMs }, fn);
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
