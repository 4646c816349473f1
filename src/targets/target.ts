/**
 * Backup targets: where finished backups go, apart from where the database
 * lives (OPFS, a disk, S3-compatible storage...). Runtime-agnostic.
 */

export interface TargetObject {
  /** Name relative to the target (no prefix, no slash). */
  name: string;
  size: number;
  /** Last modification as the store reports it, ms since the epoch. */
  mtimeMs: number;
}

/** Where finished backups go: a flat namespace of immutable objects under one prefix. */
export interface BackupTarget {
  readonly id: string;                       // e.g. 's3://bucket/prefix', for messages and results
  /** Objects whose names start with `prefix`, in name order. */
  list(prefix: string): Promise<TargetObject[]>;
  /** null when there is no object `name`. */
  stat(name: string): Promise<TargetObject | null>;
  /** Up to `length` bytes at `offset` (fewer at the end, none past it). */
  read(name: string, offset: number, length: number): Promise<Uint8Array>;
  /** Stores `size` bytes read through `source`; the object appears whole under `name` or not at all. */
  put(name: string, size: number, source: (offset: number, length: number) => Promise<Uint8Array>, onProgress?: (done: number) => void): Promise<void>;
  /** Deletes `name`; false when it was already gone. */
  remove(name: string): Promise<boolean>;
  /**
   * Optional: proves the target is usable (reachable, credentials accepted,
   * bucket present) with one cheap request, throwing the same typed errors
   * as the other methods. Stores that cannot tell "no such object" from "no
   * such bucket" on `stat` (S3's HEAD) answer here.
   */
  check?(): Promise<void>;
  /**
   * Optional: clears what puts cut short long ago left behind (S3: open
   * multipart uploads; a directory: staging files), older than a day at
   * `now`. Never touches a finished object. Returns how many it cleared.
   */
  cleanup?(now?: Date): Promise<number>;
}
