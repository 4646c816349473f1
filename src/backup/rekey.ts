/** Changing the database's key without ever leaving a half-rekeyed file. */
import type { KeyMaterial } from '../engine/cipher.ts';
import type { JournalMode } from '../engine/database.ts';
import { CorruptDatabaseError, WrongKeyError } from '../engine/errors.ts';
import type { Held, ServiceContext } from './context.ts';
import { tmpPath } from './names.ts';
import { discard, SIDE_FILES } from './snapshot.ts';
import { rawKeyFor } from './verify.ts';

/**
 * Takes a snapshot copy beside the database, rekeys and verifies the copy,
 * and renames it over the database: at every instant the file on disk is
 * whole and under exactly one password. (An in-place rekey that is cut
 * short leaves old- and new-key pages mixed.) Returns false when the
 * database is already under `next` (an earlier call was interrupted after
 * the new file was in place).
 */
export async function rekeyByReplacement(c: ServiceContext, held: Held, current: KeyMaterial, next: KeyMaterial): Promise<boolean> {
  const { files, databasePath: db, profile } = c;
  const staged = tmpPath(`${db}.rekey`, held.db.token);
  try {
    await c.checkFreeSpace(files.dirname(db), (await files.stat(db))?.size ?? 0);
    let oldKey: KeyMaterial;
    let journalMode: JournalMode;
    try {
      ({ raw: oldKey, journalMode } = await c.copies.snapshotTo(staged, current));
    } catch (e) {
      if (!(e instanceof WrongKeyError)) throw e;
      await discard(files, staged);
      await c.copies.snapshotTo(staged, next); // throws WrongKeyError if neither password opens it
      return false;
    }
    const nextKey = await profile.keyFor(next, files, db);
    const copy = await c.host.open(staged, { ...oldKey, cipher: profile.cipher });
    try {
      await copy.rekey(nextKey, { keepSalt: true });
    } finally {
      await copy.close();
    }
    const newKey = await rawKeyFor(c.verifyContext, nextKey, staged);
    const check = await c.verify(staged, newKey, undefined, 'pages');
    if (!check.ok) throw new CorruptDatabaseError(`the rekeyed copy failed verification (${check.reason}): ${check.detail}`);
    await c.copies.setJournalMode(staged, newKey, journalMode);
    await files.restrictToOwner(staged, 'file');
    await files.matchOwner?.(db, staged);
    await held.check();
    // Journals of the old file must not be replayed into the new one.
    await c.removeAll(SIDE_FILES.map((s) => `${db}${s}`));
    await files.rename(staged, db);
    return true;
  } finally {
    await discard(files, staged);
  }
}
