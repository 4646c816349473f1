/**
 * The worker API's incremental backups (page-store generations): list,
 * verify and restore one, locally or on an incremental target (a
 * `{ folder, incremental: true }` or `{ s3, incremental: true }` target).
 * createBackup({ incremental: true }) (or the `incremental` open option)
 * makes local ones; every backup makes one on each incremental target.
 */
import type { BackupService, OnProgress, RestoreResult } from '../backup/backup-service.ts';
import type { GenerationList, GenerationVerifyResult } from '../backup/page-store/index.ts';

export function generationsApi(backups: () => BackupService, withDatabaseClosed: <T>(fn: () => Promise<T>) => Promise<T>) {
  return {
    /** The generations, newest first, and any damage or rollback found in the store. */
    listGenerations: (): Promise<GenerationList> => backups().listGenerations(),
    /** Checks a generation ('latest' or its number) without writing: its manifest, its place in the chain, every page. */
    verifyGeneration: (generation = 'latest', onProgress?: OnProgress): Promise<GenerationVerifyResult> =>
      backups().verifyGeneration(generation, { onProgress }),
    /** Replaces the database with a generation; the connection is reopened on what was restored. */
    restoreGeneration: (generation: string, onProgress?: OnProgress): Promise<RestoreResult & { generation?: string }> =>
      withDatabaseClosed(() => backups().restoreGeneration(generation, { onProgress })),
    /** An incremental target's generations (its id from targetIds()), newest first, with any damage found there. */
    listTargetGenerations: (target: string): Promise<GenerationList> => backups().targets.listGenerations(target),
    /** Checks a generation on the target: every page read from there, its HMAC checked. */
    verifyTargetGeneration: (target: string, generation = 'latest', onProgress?: OnProgress): Promise<GenerationVerifyResult> =>
      backups().targets.verifyGeneration(target, generation, { onProgress }),
    /** Replaces the database with a generation from the target (assembled, verified fully, swapped in); the connection is reopened. */
    restoreTargetGeneration: (target: string, generation: string, onProgress?: OnProgress): Promise<RestoreResult & { generation?: string }> =>
      withDatabaseClosed(() => backups().targets.restoreGeneration(target, generation, { onProgress })),
  };
}
