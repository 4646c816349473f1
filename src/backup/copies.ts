/**
 * Copies of the live database, taken without writing to it: a snapshot
 * (snapshot.ts) applied and turned into a rollback-journal file, the
 * pre-restore keep, and the journal mode put back on a file that takes the
 * database's place.
 */
import type { KeyMaterial } from '../engine/cipher.ts';
import type { JournalMode } from '../engine/database.ts';
import { copyFile } from '../files/file-store.ts';
import { copySnapshot, discard, materialize, SIDE_FILES } from './snapshot.ts';
import { rawKeyFor, type VerifyContext } from './verify.ts';
import { headerBytes } from './header.ts';
import { identityOf, sameIdentity } from './catalog.ts';
import { resolveSettings } from '../engine/cipher.ts';

export interface CopiesContext extends VerifyContext {
  databasePath: string;
  log: { debug(m: string): void; warn(m: string): void };
  snapshotTimeoutMs?: number | undefined;
  readLock?: ((path: string, timeoutMs: number) => Promise<() => void>) | undefined;
}

export class DatabaseCopies {
  constructor(private readonly ctx: CopiesContext) {}

  /**
   * Writes a consistent copy of the database to `target` without writing to
   * the database (snapshot.ts), applies its WAL or journal on the copy, and
   * returns the raw key that opens it.
   */
  async snapshotTo(
    target: string, secret: KeyMaterial, onProgress?: (p: { phase: 'export'; bytesDone: number; bytesTotal: number }) => void | Promise<void>,
    source?: { raw: KeyMaterial; salt: Uint8Array | null },
  ): Promise<{ raw: KeyMaterial; journalMode: JournalMode }> {
    source ??= await this.sourceKey(secret);
    const material = await this.ctx.profile.keyFor(secret, this.ctx.files, this.ctx.databasePath);
    const snapshot = await copySnapshot(this.ctx.files, this.ctx.databasePath, target, {
      timeoutMs: this.ctx.snapshotTimeoutMs,
      databaseBytes: () => this.heldBytes(source.raw),
      readLock: this.ctx.readLock && ((ms) => this.ctx.readLock!(this.ctx.databasePath, ms)),
      onCopied: (bytes) => onProgress?.({ phase: 'export', bytesDone: bytes, bytesTotal: bytes }),
    });
    if (snapshot.attempts > 1) this.ctx.log.debug(`snapshot of ${this.ctx.files.basename(this.ctx.databasePath)} took ${snapshot.attempts} attempts (another process was writing)`);
    // The copy has the source's salt, so one key derivation serves the source, the copy and its check.
    const copySalt = await identityOf(this.ctx.files, target);
    const raw = source.salt && copySalt && sameIdentity(source.salt, copySalt) ? source.raw : await rawKeyFor(this.ctx, material, target);
    const db = await this.ctx.open(target, { ...raw, cipher: this.ctx.profile.cipher });
    let journalMode: JournalMode;
    try {
      journalMode = await materialize(db, snapshot.pending);
    } finally {
      await db.close();
    }
    for (const s of SIDE_FILES) await this.ctx.files.remove(`${target}${s}`).catch(() => false);
    return { raw, journalMode };
  }

  /** The raw key of the database as it is now (derived from its salt, read-only), and that salt. */
  async sourceKey(secret: KeyMaterial): Promise<{ raw: KeyMaterial; salt: Uint8Array | null }> {
    const salt = await identityOf(this.ctx.files, this.ctx.databasePath);
    return { raw: await rawKeyFor(this.ctx, await this.ctx.profile.keyFor(secret, this.ctx.files, this.ctx.databasePath), this.ctx.databasePath), salt };
  }

  /** What the database holds by its header (null: not known; use the file's size). */
  async heldBytes(raw: KeyMaterial): Promise<number | null> {
    if (raw.key === undefined) return null;
    return headerBytes(this.ctx.files, this.ctx.databasePath, raw.key, resolveSettings(this.ctx.profile.cipher)).catch(() => null);
  }

  /** Backups are rollback-journal files; a file put in the database's place gets the database's journal mode back. */
  async setJournalMode(path: string, raw: KeyMaterial, mode: JournalMode): Promise<void> {
    if (mode !== 'wal') return;
    const db = await this.ctx.open(path, { ...raw, cipher: this.ctx.profile.cipher });
    try {
      await db.exec('PRAGMA journal_mode = WAL');
    } finally {
      await db.close();
    }
  }

  /**
   * Keeps the database about to be replaced: a consistent snapshot if it
   * opens, its raw files if not. Returns its journal mode (the profile's when
   * it does not open).
   */
  async keepCurrent(target: string, secret: KeyMaterial): Promise<JournalMode> {
    let journalMode = this.ctx.profile.journalMode;
    try {
      ({ journalMode } = await this.snapshotTo(target, secret));
    } catch (e) {
      this.ctx.log.warn(`current database does not open (${codeOf(e)}); keeping its raw files`);
      await discard(this.ctx.files, target);
      await copyFile(this.ctx.files, this.ctx.databasePath, target);
      if (await this.ctx.files.stat(`${this.ctx.databasePath}-wal`)) await copyFile(this.ctx.files, `${this.ctx.databasePath}-wal`, `${target}-wal`);
    }
    await this.ctx.files.restrictToOwner(target, 'file');
    for (const s of this.ctx.profile.sidecars) {
      if (await this.ctx.files.stat(`${this.ctx.databasePath}${s}`)) await copyFile(this.ctx.files, `${this.ctx.databasePath}${s}`, `${target}${s}`);
    }
    return journalMode;
  }
}

function codeOf(e: unknown): string {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}
