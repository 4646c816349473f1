/**
 * What a service offers on its targets (`service.targets`): list, latest,
 * verify, restore, import and prune, each on one target by its id. A backup
 * read from a target is downloaded to a temporary file in the local backup
 * directory first, then checked or restored exactly as a local one is.
 */
import type { KeyMaterial } from '../engine/cipher.ts';
import type { Held, ServiceContext } from './context.ts';
import { codeOf, messageOf } from './context.ts';
import { tmpPath } from './names.ts';
import { restoreFrom, type RestoreOptions } from './restore.ts';
import { discard } from './snapshot.ts';
import type { TargetBackupInfo, TargetResult, Targets } from './targets.ts';
import type { BackupResult, OnProgress, RestoreResult } from './types.ts';
import type { VerifyResult } from './verify.ts';
import type { GenerationList, GenerationVerifyResult } from './page-store/index.ts';

/** What the service lends: its lock, its current secret, where temporary files go, and its import. */
export interface ServiceHooks {
  c: ServiceContext;
  backupDir: string;
  locked<T>(fn: (held: Held) => Promise<T>): Promise<T>;
  secret(): KeyMaterial;
  freshName(): Promise<string>;
  importBackup(source: AsyncIterable<Uint8Array>, options: { onProgress?: OnProgress; sizeHint?: number }): Promise<BackupResult>;
}

export class TargetBackups {
  constructor(readonly targets: Targets, private readonly s: ServiceHooks) {}

  /** The targets' ids, in the order backups go to them. */
  get ids(): string[] {
    return this.targets.specs.map((x) => x.target.id);
  }

  /** This database's backups on the target, newest first. */
  list(id: string): Promise<TargetBackupInfo[]> {
    return this.targets.infos(id);
  }

  async latest(id: string): Promise<TargetBackupInfo | null> {
    return (await this.list(id))[0] ?? null;
  }

  /** Applies each target's retention (count and age); one result per target. */
  prune(): Promise<TargetResult[]> {
    return this.s.locked(() => this.targets.prune());
  }

  /**
   * Downloads the backup and verifies it fully (page HMACs, quick_check,
   * every table), as verifyBackup does a local one. What the check finds is
   * the result; a target that cannot deliver the backup (TARGET_NOT_FOUND,
   * TARGET_UNREACHABLE, TARGET_DENIED …) rejects.
   */
  verify(id: string, name: string, options: { onProgress?: OnProgress } = {}): Promise<VerifyResult> {
    return this.#withDownload(id, name, options.onProgress, (staged) => this.s.c.verifyWith(this.s.secret(), staged, options.onProgress));
  }

  /**
   * Replaces the database with a backup from the target: downloaded to a
   * temporary file, then restored as restoreBackup does (verified, the
   * current database kept as `.pre-restore-…`, swapped in by rename).
   */
  restore(id: string, name: string, options: RestoreOptions = {}): Promise<RestoreResult> {
    return this.#withDownload(id, name, options.onProgress, (staged, held) => restoreFrom(this.s.c, held, this.s.secret(), staged, options))
      .catch((e) => ({ success: false, error: messageOf(e), errorCode: codeOf(e) }));
  }

  /** An incremental target's generations, newest first, and any damage or rollback found there. */
  listGenerations(id: string): Promise<GenerationList> {
    return this.targets.generations(this.targets.spec(id)).list(this.s.secret());
  }

  /** Checks a generation ('latest' or its number) on an incremental target: its manifest, its chain, every page read from the target. */
  verifyGeneration(id: string, generation = 'latest', options: { onProgress?: OnProgress } = {}): Promise<GenerationVerifyResult> {
    return this.targets.generations(this.targets.spec(id)).verify(this.s.secret(), generation, options.onProgress);
  }

  /**
   * Replaces the database with a generation from an incremental target: its
   * pages downloaded and assembled beside the database (each page's HMAC
   * checked at its number), verified fully, then swapped in as restoreGeneration does.
   */
  restoreGeneration(id: string, generation: string, options: RestoreOptions = {}): Promise<RestoreResult & { generation?: string }> {
    return this.s.locked((held) => this.targets.generations(this.targets.spec(id)).restore(held, this.s.secret(), generation, options))
      .catch((e) => ({ success: false, error: messageOf(e), errorCode: codeOf(e) }));
  }

  /** Copies a backup from the target into the local backup directory, verified as importBackup does. */
  async import(id: string, name: string, options: { onProgress?: OnProgress } = {}): Promise<BackupResult> {
    try {
      const size = (await this.targets.spec(id).target.stat(name))?.size;
      return await this.s.importBackup(this.targets.stream(id, name), { ...options, ...(size !== undefined ? { sizeHint: size } : {}) });
    } catch (e) {
      return { success: false, error: messageOf(e), errorCode: codeOf(e), sizeBytes: 0 };
    }
  }

  async #withDownload<T>(id: string, name: string, onProgress: OnProgress | undefined, fn: (staged: string, held: Held) => Promise<T>): Promise<T> {
    const { target } = this.targets.spec(id);
    return this.s.locked(async (held) => {
      const size = (await target.stat(name))?.size ?? 0;
      await this.s.c.checkFreeSpace(this.s.backupDir, size);
      // A temporary name of this holding: a run that dies leaves it to the next cleanup.
      const staged = tmpPath(await this.s.freshName(), held.dir.token);
      try {
        await this.targets.download(id, name, staged, onProgress);
        return await fn(staged, held);
      } finally {
        await discard(this.s.c.files, staged);
        for (const s of this.s.c.profile.sidecars) await this.s.c.removeQuietly(`${staged}${s}`);
      }
    });
  }
}
