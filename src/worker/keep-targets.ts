/**
 * The off-site targets a worker's backup service writes to, as the page (or
 * a Node main thread) describes them in `open()`'s options: plain data that
 * crosses the worker boundary, made into BackupTargets in the worker.
 *
 * - `folder`: a FileSystemDirectoryHandle (a folder the user picked); it is
 *   structured-cloneable, so the worker writes to it directly.
 * - `s3`: S3-compatible storage. In pages, give `presign`: the callback stays
 *   on the page (where the app's session, cookies or server live) and the
 *   worker calls it through a Comlink proxy once per request — the worker's
 *   requests (multipart upload ids, part numbers, ranged read-backs, retries)
 *   cannot be known in advance, so URLs handed over beforehand would not do.
 *   Scripts may give `credentials` instead; they are then posted to the worker.
 */
import { InvalidArgumentError } from '../engine/errors.ts';
import type { TargetSpec } from '../backup/targets.ts';
import type { RetentionSettings } from '../backup/page-store/index.ts';
import { FolderTarget } from '../targets/folder-target.ts';
import { S3Target, type S3TargetOptions } from '../targets/s3/s3-target.ts';

/** S3 settings that can cross to the worker (no `fetch` or `clock`); `presign` is proxied, not cloned. */
export type KeepS3Options = Omit<S3TargetOptions, 'fetch' | 'clock'>;

interface Retention {
  /** Newest backups kept on this target (default: the service's maxBackups). */
  maxBackups?: number;
  /** Older backups are deleted from this target, except the newest (default: the service's maxAgeDays). */
  maxAgeDays?: number;
  /** Page-store generations (incremental backups) on this target instead of full files: see backup/target-generations.ts. */
  incremental?: boolean;
  /** With `incremental`: which generations are kept (default: the newest 30). */
  generations?: RetentionSettings;
}

export type KeepTarget = ({ folder: FileSystemDirectoryHandle; s3?: never } | { s3: KeepS3Options; folder?: never }) & Retention;

const isDirectory = (h: unknown): h is FileSystemDirectoryHandle =>
  typeof h === 'object' && h !== null && (h as FileSystemDirectoryHandle).kind === 'directory' && typeof (h as FileSystemDirectoryHandle).getFileHandle === 'function';

/** The service's target specs, in the order given. */
export function targetSpecs(targets: readonly KeepTarget[] | undefined): TargetSpec[] {
  if (targets === undefined) return [];
  if (!Array.isArray(targets)) throw new InvalidArgumentError('targets must be an array of { folder } or { s3 }');
  return targets.map((t, i) => {
    const retention: Retention = {};
    if (t?.maxBackups !== undefined) retention.maxBackups = t.maxBackups;
    if (t?.maxAgeDays !== undefined) retention.maxAgeDays = t.maxAgeDays;
    if (t?.incremental !== undefined) retention.incremental = !!t.incremental;
    if (t?.generations !== undefined) retention.generations = t.generations;
    if (t?.folder !== undefined && t.s3 === undefined) {
      if (!isDirectory(t.folder)) throw new InvalidArgumentError(`targets[${i}].folder must be a FileSystemDirectoryHandle`);
      return { target: new FolderTarget(t.folder), ...retention };
    }
    if (t?.s3 !== undefined && t.folder === undefined) return { target: new S3Target(t.s3), ...retention };
    throw new InvalidArgumentError(`targets[${i}] must be { folder: FileSystemDirectoryHandle } or { s3: { presign | credentials, … } }`);
  });
}
