/** The shapes the backup service takes and gives: progress, logging, its host, its results. */
import type { Database, OpenOptions } from '../engine/database.ts';
import type { CipherSettings, KeyMaterial } from '../engine/cipher.ts';
import type { PageCheck, PageMacs } from './page-check.ts';
import type { FileStore } from '../files/file-store.ts';
import type { TargetResult, TargetSpec } from './targets.ts';
import type { KeyProfile } from './key-profiles.ts';
import type { RetentionSettings } from './page-store/retention.ts';

export interface Progress {
  /** 'upload' and 'download': to and from a backup target. */
  phase: 'export' | 'verify' | 'copy' | 'upload' | 'download';
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
   * connections (HostVFS.readLock), held while a snapshot is copied (or, for
   * an incremental backup of a database at rest, read in place until its last
   * look), so writers in this process wait instead of disturbing it.
   */
  readLock?(path: string, timeoutMs: number): Promise<() => void>;
  /**
   * Optional: checks every page's HMAC of the file at `path` by the host's own
   * means (on every core: src/node-page-check.ts); null leaves the file to the
   * in-thread check (page-check.ts), e.g. when it is small. A rejection (its
   * threads gone) is no verdict on the file: the in-thread check runs instead.
   */
  checkPages?: PageChecks;
  /**
   * Optional: the host's own page MAC, faster than hash-wasm (Node and Deno:
   * node:crypto's native hashes), for the pages incremental backups check one
   * by one: changed pages as a generation is made, every page as one is
   * restored or verified.
   */
  pageMacs?: PageMacs;
}

/** See BackupHost.checkPages. */
export type PageChecks = ((
  path: string, key: Uint8Array, settings: Required<CipherSettings>, size: number, onBytes?: (done: number) => void,
) => Promise<PageCheck | null>) & {
  /** Optional: gets ready for a file of `size` bytes (starts threads), so that cost overlaps the work before the check. */
  warm?(size: number): void;
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
  /** With targets: what happened on each, in order (see targets.ts). `success` is the local backup's. */
  targets?: TargetResult[];
  /** Incremental backups: the generation made (then `backupPath` is the page store and `sizeBytes` what it wrote). */
  generation?: string;
  /** Incremental backups: pages written (the others are shared with earlier generations). */
  pagesWritten?: number;
  /** Incremental backups: whether every page was written (the first generation, or after a new key). */
  full?: boolean;
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
  /** What is worth knowing about the restored backup (VerifyResult.notes). */
  notes?: string[];
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
  /** createBackup makes page-store generations instead of full files (see README, incremental backups); default false. */
  incremental?: boolean;
  /** Which generations retention keeps (default: the newest 30). */
  generations?: RetentionSettings;
  host: BackupHost;
  /** Where each verified backup is also sent, each with its own retention: see targets.ts. */
  targets?: TargetSpec[];
};
