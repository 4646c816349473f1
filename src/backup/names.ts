/**
 * Backup file names: `<prefix>_YYYYMMDD_HHMMSS[-N].db` in UTC, `-N` only when
 * two backups fall in the same second. The timestamp in the name is the
 * backup's creation time (from the service's clock) for ordering, the daily
 * rule and the age rule. `<name>.<token>.tmp` is one still being written by
 * the lock holding named `token` (with `-wal`/`-journal` beside it while a
 * snapshot is applied); cleanup leaves those of a holding that may be alive.
 */
import { InvalidArgumentError } from '../engine/errors.ts';

export const TMP_SUFFIX = '.tmp';

/** The temporary name under which the lock holding `token` writes `path`. */
export function tmpPath(path: string, token: string): string {
  return `${path}.${token}${TMP_SUFFIX}`;
}

/** Prefixes become file names: keep them to a safe alphabet, never a path. */
export function validatePrefix(prefix: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(prefix) || prefix.includes('..')) {
    throw new InvalidArgumentError(
      'prefix must be 1-64 characters of letters, digits, ".", "_" or "-", start with a letter or digit, and contain no ".."',
    );
  }
  return prefix;
}

export function nonNegativeInteger(n: number, name: string): number {
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
  return n;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

export function utcDay(date: Date): string {
  return `${date.getUTCFullYear()}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}`;
}

export function backupName(prefix: string, date: Date, seq = 0): string {
  const time = `${pad(date.getUTCHours())}${pad(date.getUTCMinutes())}${pad(date.getUTCSeconds())}`;
  return `${prefix}_${utcDay(date)}_${time}${seq ? `-${seq}` : ''}.db`;
}

export interface ParsedName {
  createdAt: Date;
  seq: number;
  tmp: boolean;
  /** The lock holding that writes a temporary file (none on files of older versions). */
  token?: string;
}

/** Parses a backup (or tmp) name made with this prefix; null for anything else. */
export function parseBackupName(prefix: string, name: string): ParsedName | null {
  if (!name.startsWith(`${prefix}_`)) return null;
  const m = /^(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})(?:-(\d{1,6}))?\.db((?:\.([A-Za-z0-9-]{1,64}))?\.tmp(?:-wal|-journal|-shm)?)?$/.exec(name.slice(prefix.length + 1));
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const createdAt = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  if (Number.isNaN(createdAt.getTime()) || createdAt.getUTCDate() !== d) return null;
  return { createdAt, seq: Number(m[7] ?? 0), tmp: m[8] !== undefined, ...(m[9] ? { token: m[9] } : {}) };
}
