/**
 * Incremental encrypted backups as a page store: generations of a database
 * that share unchanged pages, each a small sealed manifest over packs of
 * SQLCipher pages. Runtime-agnostic: storage only through a FileStore.
 * The format is specified in docs/page-store.md.
 */
export { backupGeneration, type BackupGenerationOptions, type GenerationResult, type SnapshotSource } from './backup.ts';
export {
  exportGeneration, listGenerations, parseGeneration, restoreGeneration, verifyGeneration,
  type GenerationInfo, type GenerationList, type GenerationVerifyFailure, type GenerationVerifyResult, type ReadOptions, type RestoreGenerationResult,
} from './restore.ts';
export { applyRetention, type CleanupOptions, type CleanupResult } from './gc.ts';
export { planRetention, type RetentionSettings } from './retention.ts';
export type { Anchor, GenerationState } from './state.ts';
export type { OnPageStoreProgress, PageStoreProgress } from './pages.ts';
export { DEFAULT_PACK_BYTES } from './packs.ts';
