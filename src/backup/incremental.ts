/**
 * Incremental backups in the service: page-store generations
 * (src/backup/page-store/, docs/page-store.md) made from the same read-only
 * snapshot as full backups, under the service's locks; listed, verified and
 * restored (assembled, verified fully, then swapped in as a full backup is);
 * purged of old-key generations after a password change.
 */
import type { KeyMaterial } from '../engine/cipher.ts';
import type { FileStore } from '../files/file-store.ts';
import { CorruptDatabaseError, DatabaseNotFoundError, InvalidArgumentError } from '../engine/errors.ts';
import { codeOf, messageOf, type Held, type ServiceContext } from './context.ts';
import { GenerationKeys } from './generation-keys.ts';
import {
  applyRetention, backupGeneration, type GenerationResult, type SnapshotSource, listGenerations, restoreGeneration, verifyGeneration,
  type GenerationList, type GenerationVerifyResult, type OnPageStoreProgress, type RetentionSettings,
} from './page-store/index.ts';
import { findHead, scanStore } from './page-store/state.ts';
import { MANIFEST_PREFIX, parseManifestName } from './page-store/format.ts';
import { deriveStoreKeys } from './page-store/seal.ts';
import type { JournalMode } from '../engine/database.ts';
import { keepPreRestore, putInPlace, stagedRestorePath, type RestoreOptions } from './restore.ts';
import { discard, NotAtRestError } from './snapshot.ts';
import { readHeader } from './header.ts';
import { identityOf, sameIdentity } from './catalog.ts';
import type { SourceKey } from './copies.ts';
import { resolveSettings } from '../engine/cipher.ts';
import { openReader } from '../files/file-store.ts';
import type { BackupResult, OnProgress, RestoreResult } from './types.ts';

/** A consistent copy of the database on the local store, with what restoring it needs. */
export interface LocalSnapshot {
  path: string;
  size: number;
  journalMode: JournalMode;
}

/** Generations kept by default: the newest 30. */
export const DEFAULT_GENERATION_RETENTION: RetentionSettings = { keepLast: 30 };

export class Generations {
  readonly keys: GenerationKeys;

  constructor(
    private readonly c: ServiceContext,
    /** The page store's directory (inside the backup directory, one per database). */
    readonly dir: string,
    private readonly retention: RetentionSettings,
    /** Where the store is: the service's files, or a target's objects (see target-generations.ts). */
    readonly store: FileStore = c.files,
    /** The rollback anchor, beside the database (one per store). */
    anchorPath = `${c.databasePath}.pages-anchor`,
  ) {
    this.keys = new GenerationKeys(store, c.profile, c.databasePath, dir, anchorPath);
  }

  /** The store's directory for a database: `<backupDir>/<prefix>.<database file name>.pages`. */
  static dirFor(c: ServiceContext, backupDir: string, prefix: string): string {
    return c.files.join(backupDir, `${prefix}.${c.files.basename(c.databasePath)}.pages`);
  }

  /** Whether the store holds any generation (of any key): by the names it lists, no manifest read. */
  async any(): Promise<boolean> {
    return (await this.store.list(this.dir, MANIFEST_PREFIX)).some((f) => parseManifestName(f.name) !== null);
  }

  /**
   * A new generation: read from the database in place when it is at rest
   * (see #inPlace), else from a snapshot written to `staged` (a temporary
   * name in the backup directory, removed before returning). `afterPasswordChange`:
   * the generation is full and every generation under another key is deleted
   * once it commits. `then`: given the snapshot once the generation has
   * committed (still on disk, e.g. to send to targets), its answer goes in the result.
   */
  async create(
    held: Held, secret: KeyMaterial, staged: string, onProgress?: OnProgress, afterPasswordChange = false,
    then?: (snapshot: LocalSnapshot) => Promise<BackupResult['targets']>,
  ): Promise<BackupResult> {
    const { c } = this;
    this.refuseSidecars();
    const source = await c.files.stat(c.databasePath);
    if (!source) throw new DatabaseNotFoundError(`database not found: ${c.databasePath}`);
    // Derived while the file is read (or copied).
    const key = c.copies.sourceKey(secret);
    key.catch(() => {});
    // Room for a snapshot copy and a generation as large (one read in place needs far less: checked the same).
    const room = c.copies.checkRoom(key, source.size, (bytes) => c.checkFreeSpace(c.files.dirname(this.dir), bytes));
    // A database at rest is read in place, with no copy, for a generation that reads little twice: not the first or
    // one after a password change (full: seconds of reading with this process's writers held off; a copy holds them
    // for its own time only), and not with targets to send a file to. Nor when it was in WAL mode at the last
    // generation: only its key says so, and by then a read in place would have to end in a copy.
    const inPlace = then || afterPasswordChange ? Promise.resolve(false)
      : Promise.all([this.any(), this.keys.readAnchor().catch(() => null)]).then(([any, anchor]) => any && anchor?.journalMode !== 'wal');
    inPlace.catch(() => {}); // awaited once there is room
    await room;
    if (await inPlace) {
      const made = await this.#inPlace(held, key, onProgress);
      if (made) return made;
    }
    await c.removeQuietly(staged);
    try {
      await onProgress?.({ phase: 'export', bytesDone: 0, bytesTotal: source.size });
      // The copy says nothing: its 'export' is the generation's read of it (asServiceProgress).
      const { raw, journalMode } = await c.copies.snapshotTo(staged, secret, { sourceKey: key });
      if (raw.key === undefined) throw new CorruptDatabaseError(`${c.files.basename(c.databasePath)} has no salt to derive its key from`);
      const r = await this.commit(held, raw.key, staged, journalMode, afterPasswordChange, onProgress);
      if (!then) return r;
      const targets = await then({ path: staged, size: (await c.files.stat(staged))?.size ?? 0, journalMode });
      return { ...r, ...(targets ? { targets } : {}) };
    } finally {
      await discard(c.files, staged);
    }
  }

  /**
   * A generation read from the live database itself (snapshot.ts's
   * readAtRest): no copy is made, only changed pages are read twice, and the
   * first pass over the file runs while the key is derived. For a database at
   * rest in rollback-journal mode whose file holds exactly its pages; null
   * otherwise (a WAL or live journal to apply, WAL mode in its header, a
   * padded file, a salt that changed), and the caller takes a copy.
   */
  async #inPlace(held: Held, sourceKey: Promise<SourceKey>, onProgress: OnProgress | undefined): Promise<BackupResult | null> {
    const { c } = this;
    const settings = resolveSettings(c.profile.cipher);
    let raw: Uint8Array | undefined;
    const built = await c.copies.readAtRest(async (size, unchanged) => {
      if (size % settings.pageSize !== 0) throw new NotAtRestError();
      // Page 1 is judged within the read (after its first look), under the key derived from the salt it has.
      const key = sourceKey.then(async (k) => {
        if (k.raw.key === undefined || !k.salt) throw new NotAtRestError();
        const [header, salt] = await Promise.all([readHeader(c.files, c.databasePath, k.raw.key, settings), identityOf(c.files, c.databasePath)]);
        if (!header || header.wal || header.bytes !== size || !salt || !sameIdentity(salt, k.salt)) throw new NotAtRestError();
        return (raw = k.raw.key);
      });
      key.catch(() => {}); // awaited by backupGeneration, which may not get that far
      const reader = await openReader(c.files, c.databasePath);
      try {
        return await this.#build(held, key, { size, read: reader.read }, 'delete', false, onProgress, false, unchanged);
      } finally {
        await reader.close();
      }
    });
    return built && this.#record(held, raw!, { ...built, journalMode: 'delete' }, false);
  }

  /**
   * A new generation from a consistent copy of the database already made
   * (a staged snapshot, or a verified full backup): the live database is not
   * read. `key`: the copy's raw key. See `create` for `afterPasswordChange`.
   * `skipUnchanged`: when the newest generation holds exactly these pages,
   * none is made and the result says `unchanged`.
   */
  async commit(
    held: Held, key: Uint8Array, snapshot: string, journalMode: JournalMode, afterPasswordChange: boolean, onProgress?: OnProgress, skipUnchanged = false,
  ): Promise<BackupResult & { unchanged?: boolean }> {
    const r = await this.#build(held, key, snapshot, journalMode, afterPasswordChange, onProgress, skipUnchanged);
    return this.#record(held, key, { ...r, journalMode }, afterPasswordChange);
  }

  /** backupGeneration into this store, under the rollback anchor this service keeps for the key. */
  async #build(
    held: Held, key: Uint8Array | Promise<Uint8Array>, snapshot: string | SnapshotSource, journalMode: JournalMode, afterPasswordChange: boolean,
    onProgress: OnProgress | undefined, skipUnchanged: boolean, beforeCommit?: () => Promise<void>,
  ): Promise<GenerationResult & { started: number }> {
    const { c } = this;
    this.refuseSidecars();
    const started = Date.now();
    const anchor = afterPasswordChange ? undefined : Promise.resolve(key).then(async (k) => this.keys.anchorFor(await GenerationKeys.keyIdOf(k)));
    anchor?.catch(() => {});
    if (await this.store.ensureDir(this.dir)) await this.store.restrictToOwner(this.dir, 'dir');
    const r = await backupGeneration(this.store, this.dir, snapshot, key, c.profile.cipher, {
      now: c.clock(), lock: held.dir, retention: this.retention, journalMode, purgeOtherKeys: afterPasswordChange,
      ...(anchor ? { anchor } : {}), ...(beforeCommit ? { beforeCommit } : {}),
      full: afterPasswordChange, skipUnchanged: skipUnchanged && !afterPasswordChange, onProgress: asServiceProgress(onProgress), pageMacs: c.host.pageMacs,
    });
    return { ...r, started };
  }

  /** Once a generation is built: the anchor moves to it, its salt is noted, and the result says what was made. */
  async #record(
    held: Held, key: Uint8Array, r: GenerationResult & { started: number; journalMode: JournalMode }, afterPasswordChange: boolean,
  ): Promise<BackupResult & { unchanged?: boolean }> {
    const { c } = this;
    if (r.unchanged) {
      c.log.info(`generation ${r.generation} already holds this backup: none made`);
      return { success: true, backupPath: this.dir, sizeBytes: 0, generation: r.generation, pagesWritten: 0, full: false, unchanged: true };
    }
    await this.keys.writeAnchor({ keyId: await GenerationKeys.keyIdOf(key), seq: r.seq, digest: r.digest, journalMode: r.journalMode }, held.db);
    await this.keys.noteSalt(r.salt, afterPasswordChange);
    for (const w of [...r.warnings, ...r.cleanup.warnings]) c.log.warn(`incremental backup: ${w}`);
    c.log.info(`created generation ${r.generation} (${r.full ? 'full' : 'incremental'}: ${r.pagesWritten} of ${r.pageCount} pages, ${r.bytesWritten} bytes) in ${Date.now() - r.started} ms`);
    return { success: true, backupPath: this.dir, sizeBytes: r.bytesWritten, generation: r.generation, pagesWritten: r.pagesWritten, full: r.full };
  }

  /** The newest generation's number and time, under `key` (null: none, or not readable). */
  async head(key: Uint8Array): Promise<{ generation: string; createdAt: Date } | null> {
    const head = await findHead(this.store, await deriveStoreKeys(key), await scanStore(this.store, this.dir));
    return head.kind === 'ok' ? { generation: String(head.stored.seq), createdAt: new Date(head.manifest.body.logical.createdAtMs) } : null;
  }

  /**
   * After a password change: a full generation under the new key, and every
   * generation under another key deleted once it commits. If it fails, every
   * generation is deleted anyway: no old-key backup outlives the change.
   */
  async afterPasswordChange(
    held: Held, secret: KeyMaterial, staged: string, onProgress?: OnProgress,
    then?: (snapshot: LocalSnapshot) => Promise<BackupResult['targets']>,
  ): Promise<BackupResult> {
    return this.orPurge(held, () => this.create(held, secret, staged, onProgress, true, then));
  }

  /** `make` (a full generation under a new key), or, when it fails, every generation deleted. */
  async orPurge(held: Held, make: () => Promise<BackupResult>): Promise<BackupResult> {
    try {
      return await make();
    } catch (e) {
      await this.purgeAll(held);
      return { success: false, error: `${messageOf(e)}; incremental backups under the old password were deleted, so none exists now`, errorCode: codeOf(e), sizeBytes: 0 };
    }
  }

  /** Every generation of every key goes, then the salts and the anchor: after a password change whose new generation failed, or when the store is not in use. */
  async purgeAll(held: Held): Promise<string[]> {
    const { c } = this;
    // (A directory does not stat as a file: the store is judged by what it lists.)
    if (!(await this.any()) && !(await c.files.stat(this.keys.anchorPath))) return [];
    // A key no generation is under: every manifest is "another key's", so every one is deleted, then every pack.
    const nobody = crypto.getRandomValues(new Uint8Array(32));
    const r = await applyRetention(this.store, this.dir, nobody, {}, { now: c.clock(), lock: held.dir, purgeOtherKeys: true });
    for (const w of r.warnings) c.log.warn(`purging incremental backups: ${w}`);
    if (await this.any()) throw new CorruptDatabaseError(`could not delete every generation in ${c.files.basename(this.dir)}: ${r.warnings.join('; ')}`);
    await this.keys.forgetSalts();
    await this.keys.dropAnchor();
    return r.deleted;
  }

  async list(secret: KeyMaterial): Promise<GenerationList> {
    const raw = await this.keys.readKey(secret);
    const anchor = await this.keys.anchorFor(await GenerationKeys.keyIdOf(raw));
    return listGenerations(this.store, this.dir, raw, anchor ? { anchor } : {});
  }

  async verify(secret: KeyMaterial, generation: string, onProgress?: OnProgress): Promise<GenerationVerifyResult> {
    let raw: Uint8Array;
    try {
      raw = await this.keys.readKey(secret);
    } catch (e) {
      if (e instanceof DatabaseNotFoundError) return { ok: false, reason: 'missing', detail: e.message };
      throw e;
    }
    const anchor = await this.keys.anchorFor(await GenerationKeys.keyIdOf(raw));
    return verifyGeneration(this.store, this.dir, generation, raw, { ...(anchor ? { anchor } : {}), onProgress: asServiceProgress(onProgress), pageMacs: this.c.host.pageMacs });
  }

  /**
   * Assembles the generation beside the database (every page checked), verifies
   * the file fully, keeps the current database as `.pre-restore-…`, and renames
   * the file over it in one step, in the database's journal mode.
   */
  async restore(held: Held, secret: KeyMaterial, generation: string, options: RestoreOptions): Promise<RestoreResult & { generation?: string }> {
    const { c } = this;
    this.refuseSidecars();
    await c.refuseIfInUse('restore over');
    const raw = await this.keys.readKey(secret);
    const anchor = await this.keys.anchorFor(await GenerationKeys.keyIdOf(raw));
    const staged = stagedRestorePath(c, held);
    await discard(c.files, staged);
    try {
      let assembled;
      try {
        assembled = await restoreGeneration(this.store, this.dir, generation, raw, staged, {
          ...(anchor ? { anchor } : {}), onProgress: asServiceProgress(options.onProgress), pageMacs: c.host.pageMacs,
        });
      } catch (e) {
        if (e instanceof CorruptDatabaseError) return { success: false, error: `generation failed verification: ${e.message}`, errorCode: 'VERIFY_FAILED' };
        throw e;
      }
      const check = await c.verify(staged, { key: raw }, options.onProgress, 'full');
      if (!check.ok) return { success: false, error: `generation ${assembled.generation} failed verification (${check.reason}): ${check.detail}`, errorCode: 'VERIFY_FAILED' };
      if (!options.allowOtherDatabase) await c.refuseOtherDatabase(staged, 'restore');
      const { preRestorePath, journalMode } = await keepPreRestore(c, held, secret, assembled.journalMode);
      await putInPlace(c, held, staged, { key: raw }, journalMode, preRestorePath);
      c.log.info(`restored ${c.files.basename(c.databasePath)} from generation ${assembled.generation}`);
      return { success: true, preRestorePath, generation: assembled.generation };
    } finally {
      await discard(c.files, staged);
    }
  }

  /** The store keeps pages, not the files a key profile keeps beside the database: such profiles stay with full backups. */
  private refuseSidecars(): void {
    const { profile } = this.c;
    if (profile.sidecars.length) {
      throw new InvalidArgumentError(`the ${profile.name} key profile keeps its key's ${profile.sidecars.join(', ')} beside the database, which incremental backups do not carry: use full backups`);
    }
  }
}

/** Page-store progress in the service's phases: the database read is 'export', pages checked 'verify', pages restored 'copy'. */
function asServiceProgress(onProgress?: OnProgress): OnPageStoreProgress | undefined {
  if (!onProgress) return undefined;
  return (p) => {
    if (p.phase === 'scan') return onProgress({ phase: 'export', bytesDone: p.bytesDone, bytesTotal: p.bytesTotal });
    if (p.phase === 'verify') return onProgress({ phase: 'verify', bytesDone: p.bytesDone, bytesTotal: p.bytesTotal });
    if (p.phase === 'restore') return onProgress({ phase: 'copy', bytesDone: p.bytesDone, bytesTotal: p.bytesTotal });
    return undefined;
  };
}
