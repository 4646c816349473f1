/**
 * Copies of the live database, taken without writing to it: a snapshot
 * (snapshot.ts) applied and turned into a rollback-journal file, the
 * pre-restore keep, and the journal mode put back on a file that takes the
 * database's place.
 */
import type { KeyMaterial } from '../engine/cipher.ts';
import type { JournalMode } from '../engine/database.ts';
import { copyFile } from '../files/file-store.ts';
import { copySnapshot, discard, materialize, readAtRest, SIDE_FILES } from './snapshot.ts';
import { rawKeyFor, type VerifyContext } from './verify.ts';
import { headerBytes } from './header.ts';
import { identityOf, sameIdentity } from './catalog.ts';
import { resolveSettings } from '../engine/cipher.ts';
import type { PageCheck } from './page-check.ts';
import { StorageFullError } from '../engine/errors.ts';
import type { OnProgress } from './types.ts';

export interface CopiesContext extends VerifyContext {
  databasePath: string;
  log: { debug(m: string): void; warn(m: string): void };
  snapshotTimeoutMs?: number | undefined;
  readLock?: ((path: string, timeoutMs: number) => Promise<() => void>) | undefined;
}

export interface SnapshotOptions {
  /** The copy's progress. */
  onProgress?: OnProgress | undefined;
  /** The key, when it is already being derived (it is while the file is copied). */
  sourceKey?: SourceKey | Promise<SourceKey> | undefined;
  /** Check the copy's page HMACs on the host's cores, for the caller's verification, reporting as 'verify'. */
  checkPages?: { onProgress?: OnProgress | undefined };
}

/** The raw key of the live database, and the salt it was derived with. */
export interface SourceKey {
  raw: KeyMaterial;
  salt: Uint8Array | null;
}

export class DatabaseCopies {
  constructor(private readonly ctx: CopiesContext) {}

  /**
   * Writes a consistent copy of the database to `target` without writing to
   * the database (snapshot.ts), applies its WAL or journal on the copy, and
   * returns the raw key that opens it. With `checkPages`, also the host's
   * check of the copy's page HMACs, when it made one (null: it declined or
   * failed; left out: it has none, or the copy changed after it).
   */
  async snapshotTo(target: string, secret: KeyMaterial, options: SnapshotOptions = {}): Promise<{ raw: KeyMaterial; journalMode: JournalMode; pages?: PageCheck | null }> {
    const keying = Promise.resolve(options.sourceKey ?? this.sourceKey(secret));
    keying.catch(() => {}); // awaited below; a failure is thrown there
    const material = await this.ctx.profile.keyFor(secret, this.ctx.files, this.ctx.databasePath);
    // Deriving the key takes about as long as copying 100 MB, and only the key reads how much of the file the
    // database holds. Copy the whole file meanwhile and cut it after — unless it is sparse (mostly padding).
    const info = await this.ctx.files.stat(this.ctx.databasePath);
    const cutAfter = !!(this.ctx.files.truncate && this.ctx.files.copyPrefix && info?.allocated !== undefined && info.allocated >= info.size);
    const snapshot = await copySnapshot(this.ctx.files, this.ctx.databasePath, target, {
      timeoutMs: this.ctx.snapshotTimeoutMs,
      ...(cutAfter ? {} : { databaseBytes: async () => this.heldBytes((await keying).raw) }),
      readLock: this.ctx.readLock && ((ms) => this.ctx.readLock!(this.ctx.databasePath, ms)),
      onCopied: (bytes) => options.onProgress?.({ phase: 'export', bytesDone: bytes, bytesTotal: bytes }),
    });
    // The check's threads start once the bytes are copied (their write-back to disk goes on), while the key is usually
    // still being derived. Started beside the copy, on two cores, they took time from the key derivation the check waits for.
    if (options.checkPages) this.ctx.checkPages?.warm?.(info?.size ?? 0);
    if (snapshot.attempts > 1) this.ctx.log.debug(`snapshot of ${this.ctx.files.basename(this.ctx.databasePath)} took ${snapshot.attempts} attempts (another process was writing)`);
    const source = await keying;
    if (cutAfter) await this.#cutToHeld(target, source.raw);
    // The copy has the source's salt, so one key derivation serves the source, the copy and its check.
    const copySalt = await identityOf(this.ctx.files, target);
    const raw = source.salt && copySalt && sameIdentity(source.salt, copySalt) ? source.raw : await rawKeyFor(this.ctx, material, target);
    // Nothing to apply: the pages are checked (on other cores) once copied, before the engine opens the copy. Not while
    // it does: the engine's first queries in a process make V8 compile two of its largest functions (~250 ms of CPU on
    // background threads), which took the check's cores; once the check is done, that compile holds up nothing.
    const early = options.checkPages && snapshot.pending === null ? await this.#checkPages(target, raw, options.checkPages.onProgress) : undefined;
    const db = await this.ctx.open(target, { ...raw, cipher: this.ctx.profile.cipher });
    let journalMode: JournalMode;
    let writtenTo = 0;
    const unwatch = db.watchWrites((offset, length) => void (writtenTo = Math.max(writtenTo, offset + length)));
    try {
      journalMode = await materialize(db, snapshot.pending);
    } finally {
      await db.close();
      unwatch();
    }
    for (const s of SIDE_FILES) await this.ctx.files.remove(`${target}${s}`).catch(() => false);
    await snapshot.durable; // the host's write-back of the copy went on while it was checked and applied
    // Opening it may rewrite page 1 (the journal mode put back): the engine checks page 1's HMAC as it is then when
    // the copy is opened to verify it, as it does every page it reads. More than page 1 written (or no early check):
    // the copy is checked whole later.
    return { raw, journalMode, ...(early && writtenTo <= early.pageSize ? { pages: early.pages } : {}) };
  }

  /** Reads the database in place while it is at rest (snapshot.ts's readAtRest), with this service's timeout and read lock. */
  readAtRest<T>(read: (size: number, unchanged: () => Promise<void>) => Promise<T>): Promise<T | null> {
    return readAtRest(this.ctx.files, this.ctx.databasePath, read, {
      timeoutMs: this.ctx.snapshotTimeoutMs,
      readLock: this.ctx.readLock && ((ms) => this.ctx.readLock!(this.ctx.databasePath, ms)),
    });
  }

  /** A copy taken whole is cut to what its database holds by its header (the copy's page 1 is the snapshot's). */
  async #cutToHeld(target: string, raw: KeyMaterial): Promise<void> {
    if (raw.key === undefined) return;
    const held = await headerBytes(this.ctx.files, target, raw.key, resolveSettings(this.ctx.profile.cipher)).catch(() => null);
    const size = (await this.ctx.files.stat(target))?.size ?? 0;
    if (held !== null && held < size) await this.ctx.files.truncate!(target, held);
  }

  /** The host's page check of the copy (null: it could not; undefined: it has none, or no key to check with). */
  async #checkPages(target: string, raw: KeyMaterial, onProgress?: OnProgress): Promise<{ pages: PageCheck | null; pageSize: number } | undefined> {
    const size = (await this.ctx.files.stat(target))?.size;
    if (!this.ctx.checkPages || raw.key === undefined || !size) return undefined;
    const settings = resolveSettings(this.ctx.profile.cipher);
    const onBytes = (done: number) => void Promise.resolve(onProgress?.({ phase: 'verify', bytesDone: done, bytesTotal: size })).catch(() => {});
    onBytes(0);
    // The check failing to run (a thread gone) says nothing of the copy: null has verify.ts check it in-thread.
    const pages = await this.ctx.checkPages(target, raw.key, settings, size, onBytes).catch((e: unknown) => {
      this.ctx.log.warn(`page check on other threads failed (${e instanceof Error ? e.message : String(e)}); checking in this thread`);
      return null;
    });
    return { pages, pageSize: settings.pageSize };
  }

  /** The raw key of the database as it is now (derived from its salt, read-only), and that salt. */
  async sourceKey(secret: KeyMaterial): Promise<SourceKey> {
    const salt = await identityOf(this.ctx.files, this.ctx.databasePath);
    return { raw: await rawKeyFor(this.ctx, await this.ctx.profile.keyFor(secret, this.ctx.files, this.ctx.databasePath), this.ctx.databasePath), salt };
  }

  /**
   * Room for a copy, by `check`: for the file's `size`, or when that does not fit, for what the database holds
   * by its header (a padded file), which needs the key.
   */
  async checkRoom(key: Promise<SourceKey>, size: number, check: (bytes: number) => Promise<void>): Promise<void> {
    try {
      await check(size);
    } catch (e) {
      const holds = e instanceof StorageFullError ? await this.heldBytes((await key).raw) : null;
      if (holds === null || holds >= size) throw e;
      await check(holds);
    }
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
