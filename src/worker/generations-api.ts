/**
 * The worker API's incremental backups (page-store generations): list,
 * verify and restore one. createBackup({ incremental: true }) (or the
 * `incremental` open option) makes them.
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
  };
}
