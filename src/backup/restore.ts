/** Putting a backup in the database's place, keeping what it replaces. */
import type { KeyMaterial } from '../engine/cipher.ts';
import { CorruptDatabaseError } from '../engine/errors.ts';
import { copyFile } from '../files/file-store.ts';
import type { Held, ServiceContext } from './context.ts';
import { backupName, tmpPath } from './names.ts';
import { discard, SIDE_FILES } from './snapshot.ts';
import type { OnProgress, RestoreResult } from './types.ts';
import { rawKeyFor } from './verify.ts';

export interface RestoreOptions {
  onProgress?: OnProgress;
  /** Restore a backup of another database (another salt) too. */
  allowOtherDatabase?: boolean;
}

/**
 * The backup is verified, the current database is kept as
 * `<database>.pre-restore-<time>`, the backup is copied beside the database,
 * verified again, and renamed over it in one step.
 */
export async function restoreFrom(c: ServiceContext, held: Held, secret: KeyMaterial, path: string, options: RestoreOptions): Promise<RestoreResult> {
  const { files, databasePath: db, profile } = c;
  await c.refuseIfInUse('restore over');
  if (!options.allowOtherDatabase) await c.refuseOtherDatabase(path, 'restore');
  const check = await c.verifyWith(secret, path, options.onProgress);
  if (!check.ok) return { success: false, error: `backup failed verification (${check.reason}): ${check.detail}`, errorCode: 'VERIFY_FAILED' };
  const material = await profile.keyFor(secret, files, path, db);
  // Named to the second and after this holding: two restores never share a name, and nothing is deleted to make room.
  const stamp = backupName('pre-restore', c.clock()).slice('pre-restore_'.length, -'.db'.length);
  const preRestorePath = (await files.stat(db)) ? `${db}.pre-restore-${stamp}-${held.db.token}` : undefined;
  const journalMode = preRestorePath ? await c.copies.keepCurrent(preRestorePath, secret) : profile.journalMode;

  const staged = tmpPath(`${db}.restore`, held.db.token);
  // A backup without a sidecar (the reference app's own) was keyed by the database's, which stays.
  const stagedSidecars: Array<readonly [string, string, string]> = [];
  for (const s of profile.sidecars) if (await files.stat(`${path}${s}`)) stagedSidecars.push([`${path}${s}`, `${staged}${s}`, `${db}${s}`]);
  try {
    const total = (await files.stat(path))?.size ?? 0;
    await copyFile(files, path, staged, (done) => options.onProgress?.({ phase: 'copy', bytesDone: done, bytesTotal: total }));
    for (const [from, to] of stagedSidecars) await copyFile(files, from, to);
    const again = await c.verify(staged, material);
    if (!again.ok) throw new CorruptDatabaseError(`the copied backup failed verification (${again.reason}): ${again.detail}`);
    await c.copies.setJournalMode(staged, await rawKeyFor(c.verifyContext, material, staged), journalMode);
    await held.check();
    // Journals of the replaced database must not be replayed into the restored one.
    await c.removeAll(SIDE_FILES.map((s) => `${db}${s}`));
    for (const [, staging, final] of stagedSidecars) await files.rename(staging, final);
    await files.restrictToOwner(staged, 'file');
    if (preRestorePath) await files.matchOwner?.(db, staged);
    await files.rename(staged, db);
  } catch (e) {
    await c.removeAll(stagedSidecars.map(([, t]) => t));
    throw e;
  } finally {
    await discard(files, staged);
  }
  c.log.info(`restored ${files.basename(db)} from ${files.basename(path)}`);
  return { success: true, preRestorePath, ...(check.notes?.length ? { notes: check.notes } : {}) };
}
