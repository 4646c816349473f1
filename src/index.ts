/**
 * Runtime-agnostic exports. Hosts add their entry point: `cipherkeep/node`
 * (Node and Deno over the filesystem).
 */
export { createEngine, fetchEngine, type Engine, type EngineOptions } from './engine/engine.ts';
export {
  Database, openDatabase as openDatabaseWith,
  type OpenOptions, type Params, type Row, type RunResult, type SqlValue, type Transaction, type JournalMode,
} from './engine/database.ts';
export { SQLCIPHER3_DEFAULTS, SQLCIPHER4_DEFAULTS, type CipherSettings, type HashAlgorithm, type KeyMaterial } from './engine/cipher.ts';
export * from './engine/errors.ts';
export { MemoryVFS } from './vfs/memory-vfs.ts';
export { MemoryFileStore } from './files/memory-file-store.ts';
export { copyFile, platformLock, type FileInfo, type FileStore, type FileWriter, type HeldLock, type Release } from './files/file-store.ts';
export { KeyedMutex } from './files/keyed-mutex.ts';
export {
  BackupService, type BackupHost, type BackupInfo, type BackupResult, type BackupServiceOptions, type Logger,
  type OnProgress, type Progress, type RestoreResult, type VerifyFailure, type VerifyResult,
} from './backup/backup-service.ts';
export { KEY_PROFILES, referenceApp, sqlcipher4, type KeyProfile } from './backup/key-profiles.ts';
export type { TargetBackupInfo, TargetResult, TargetSpec } from './backup/targets.ts';
export type { BackupTarget, TargetObject } from './targets/target.ts';
export { FileTarget, type FileTargetOptions } from './targets/file-target.ts';
export { S3Target, createPresigner, type S3TargetOptions, type Presign, type PresignerOptions } from './targets/s3/index.ts';
export { HostVFS, type PathInfo } from './vfs/host-vfs.ts';
export { ENGINE_PIN } from './engine/pin.ts';
export { FolderTarget, folderPermission } from './targets/folder-target.ts';
export { sequentialSource } from './targets/sequential-source.ts';
export { createSchedule, type Schedule, type ScheduleOptions, type ScheduleRecord, type ScheduleStore } from './targets/schedule.ts';
