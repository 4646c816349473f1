/** Putting a backup in the database's place, keeping what it replaces. */
import type { KeyMaterial } from '../engine/cipher.ts';
import type { JournalMode } from '../engine/database.ts';
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
  const { files, profile } = c;
  await c.refuseIfInUse('restore over');
  if (!options.allowOtherDatabase) await c.refuseOtherDatabase(path, 'restore');
  const check = await c.verifyWith(secret, path, options.onProgress);
  if (!check.ok) return { success: false, error: `backup failed verification (${check.reason}): ${check.detail}`, errorCode: 'VERIFY_FAILED' };
  const material = await profile.keyFor(secret, files, path, c.databasePath);
  const { preRestorePath, journalMode } = await keepPreRestore(c, held, secret);

  const staged = stagedRestorePath(c, held);
  // A backup without a sidecar (the reference app's own) was keyed by the database's, which stays.
  const stagedSidecars: Array<readonly [string, string, string]> = [];
  for (const s of profile.sidecars) if (await files.stat(`${path}${s}`)) stagedSidecars.push([`${path}${s}`, `${staged}${s}`, `${c.databasePath}${s}`]);
  try {
    const total = (await files.stat(path))?.size ?? 0;
    await copyFile(files, path, staged, (done) => options.onProgress?.({ phase: 'copy', bytesDone: done, bytesTotal: total }));
    for (const [from, to] of stagedSidecars) await copyFile(files, from, to);
    const again = await c.verify(staged, material);
    if (!again.ok) throw new CorruptDatabaseError(`the copied backup failed verification (${again.reason}): ${again.detail}`);
    await putInPlace(c, held, staged, await rawKeyFor(c.verifyContext, material, staged), journalMode, preRestorePath, stagedSidecars);
  } catch (e) {
    await c.removeAll(stagedSidecars.map(([, t]) => t));
    throw e;
  } finally {
    await discard(files, staged);
  }
  c.log.info(`restored ${files.basename(c.databasePath)} from ${files.basename(path)}`);
  return { success: true, preRestorePath, ...(check.notes?.length ? { notes: check.notes } : {}) };
}

/** Where a restore assembles the file that takes the database's place: beside it, named after this holding. */
export function stagedRestorePath(c: ServiceContext, held: Held): string {
  return tmpPath(`${c.databasePath}.restore`, held.db.token);
}

/**
 * Keeps the database about to be replaced as `<database>.pre-restore-<time>-<token>`
 * (named to the second and after this holding: two restores never share a
 * name, and nothing is deleted to make room). Returns the journal mode the
 * restored file gets (the current database's, else `fallback`).
 */
export async function keepPreRestore(
  c: ServiceContext, held: Held, secret: KeyMaterial, fallback: JournalMode = c.profile.journalMode,
): Promise<{ preRestorePath: string | undefined; journalMode: JournalMode }> {
  const db = c.databasePath;
  const stamp = backupName('pre-restore', c.clock()).slice('pre-restore_'.length, -'.db'.length);
  const preRestorePath = (await c.files.stat(db)) ? `${db}.pre-restore-${stamp}-${held.db.token}` : undefined;
  const journalMode = preRestorePath ? await c.copies.keepCurrent(preRestorePath, secret) : fallback;
  return { preRestorePath, journalMode };
}

/** The verified `staged` file (and its sidecars) renamed over the database in one step, its journal mode put back. */
export async function putInPlace(
  c: ServiceContext, held: Held, staged: string, raw: KeyMaterial, journalMode: JournalMode, preRestorePath: string | undefined,
  stagedSidecars: ReadonlyArray<readonly [string, string, string]> = [],
): Promise<void> {
  const { files, databasePath: db } = c;
  await c.copies.setJournalMode(staged, raw, journalMode);
  await held.check();
  // Journals of the replaced database must not be replayed into the restored one.
  await c.removeAll(SIDE_FILES.map((s) => `${db}${s}`));
  for (const [, staging, final] of stagedSidecars) await files.rename(staging, final);
  await files.restrictToOwner(staged, 'file');
  if (preRestorePath) await files.matchOwner?.(db, staged);
  await files.rename(staged, db);
}
