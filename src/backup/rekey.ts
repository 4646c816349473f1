/** Changing the database's key without ever leaving a half-rekeyed file. */
import { resolveSettings, type KeyMaterial } from '../engine/cipher.ts';
import type { JournalMode } from '../engine/database.ts';
import { CorruptDatabaseError, WrongKeyError } from '../engine/errors.ts';
import { identityOf } from './catalog.ts';
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
 * the new file was in place). The salt stays: it is how backups are known
 * as this database's (catalog.ts), old-password ones included, so the
 * caller's purge finds them.
 */
export async function rekeyByReplacement(c: ServiceContext, held: Held, current: KeyMaterial, next: KeyMaterial): Promise<boolean> {
  const { files, databasePath: db, profile } = c;
  const staged = tmpPath(`${db}.rekey`, held.db.token);
  const legacy = resolveSettings(profile.cipher).compatibility === 3;
  try {
    // SQLCipher 3 needs room for a second copy (rewriteUnder).
    await c.checkFreeSpace(files.dirname(db), ((await files.stat(db))?.size ?? 0) * (legacy ? 2 : 1));
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
    if (legacy) {
      await rewriteUnder(c, staged, oldKey, nextKey, held.db.token);
    } else {
      const copy = await c.host.open(staged, { ...oldKey, cipher: profile.cipher });
      try {
        await copy.rekey(nextKey, { keepSalt: true });
      } finally {
        await copy.close();
      }
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

/**
 * The key change of a SQLCipher 3 file, which sqlite3mc cannot rekey in
 * place: `staged` is copied table by table (Database.copyFrom, as
 * sqlcipher_export does) into a new file with the same settings and salt
 * under `nextKey`, which then takes its place.
 */
async function rewriteUnder(c: ServiceContext, staged: string, oldKey: KeyMaterial, nextKey: KeyMaterial, token: string): Promise<void> {
  const { files, profile } = c;
  const settings = resolveSettings(profile.cipher);
  // A plaintext-header file's salt is not in the file: its owner gives it, and it stays.
  const salt = settings.plaintextHeaderSize > 0 ? settings.salt! : await identityOf(files, staged);
  if (!salt) throw new CorruptDatabaseError('the copy to rekey vanished');
  const fresh = tmpPath(`${c.databasePath}.rewrite`, token);
  await discard(files, fresh); // never fill a leftover
  try {
    const target = await c.host.open(fresh, { ...nextKey, cipher: { ...profile.cipher, salt }, create: true });
    try {
      await target.copyFrom(staged, oldKey);
    } finally {
      await target.close();
    }
    await files.rename(fresh, staged);
  } finally {
    await discard(files, fresh);
  }
}
