/** The shapes the backup service takes and gives: progress, logging, its host, its results. */
import type { Database, OpenOptions } from '../engine/database.ts';
import type { FileStore } from '../files/file-store.ts';
import type { TargetResult } from './targets.ts';

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
   * connections (HostVFS.readLock), held while a snapshot is copied, so
   * writers in this process wait instead of disturbing the copy.
   */
  readLock?(path: string, timeoutMs: number): Promise<() => void>;
}

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
