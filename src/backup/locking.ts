/**
 * The service's locks, taken in one order: the in-process lock first (no
 * polling between services of one realm), then the host's cross-process lock
 * on the database, then on the backup directory (services of two databases
 * may share one). The directory is made (0700) when missing, and refused
 * when others could write to it.
 */
import type { FileStore } from '../files/file-store.ts';
import { KeyedMutex } from '../files/keyed-mutex.ts';
import type { Held } from './context.ts';

/** The backup directory's lock, beside the backups (never listed: not a backup name). */
export const DIR_LOCK = '.cipherkeep-lock';

/** One lock table for every service in this realm; entries vanish when released. */
const inProcess = new KeyedMutex();

export interface LockPlace {
  files: FileStore;
  databasePath: string;
  backupDir: string;
  timeoutMs: number;
  staleMs: number | undefined;
}

export async function withLocks<T>(p: LockPlace, fn: (held: Held) => Promise<T>): Promise<T> {
  const { files } = p;
  const releaseLocal = await inProcess.acquire(p.databasePath, p.timeoutMs);
  try {
    const db = await files.lock(`${p.databasePath}.backup-lock`, p.timeoutMs, p.staleMs);
    try {
      if (await files.ensureDir(p.backupDir)) await files.restrictToOwner(p.backupDir, 'dir');
      await files.refuseShared?.(p.backupDir);
      const dir = await files.lock(files.join(p.backupDir, DIR_LOCK), p.timeoutMs, p.staleMs);
      try {
        return await fn({ db, dir, check: async () => (await db.check(), await dir.check()) });
      } finally {
        await dir.release();
      }
    } finally {
      await db.release();
    }
  } finally {
    await releaseLocal();
  }
}
