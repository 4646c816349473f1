/**
 * What the backup service's operations share: where the database and its
 * backups are, how to verify them, and the careful ways to remove files and
 * to refuse what must not be done. Operations that change files run with
 * the service's locks held (`Held`).
 */
import type { KeyMaterial } from '../engine/cipher.ts';
import { CipherkeepError, InUseError, OtherDatabaseError, StorageFullError } from '../engine/errors.ts';
import { fromHostError, messageOf } from '../engine/error-map.ts';
import type { FileStore, HeldLock } from '../files/file-store.ts';
import type { KeyProfile } from './key-profiles.ts';
import type { DatabaseCopies } from './copies.ts';
import { identityOf, sameIdentity } from './catalog.ts';
import type { BackupHost, Logger, OnProgress } from './types.ts';
import { verifyFile, type VerifyContext, type VerifyDepth, type VerifyResult } from './verify.ts';
import type { PageCheck } from './page-check.ts';

export { messageOf };

/** The locks every operation that changes files holds: the database's and the backup directory's. */
export interface Held {
  db: HeldLock;
  /** Names the temporary files in the backup directory. */
  dir: HeldLock;
  /** Throws LockLostError if either was taken over. */
  check(): Promise<void>;
}

export class ServiceContext {
  readonly files: FileStore;
  readonly verifyContext: VerifyContext;

  constructor(
    readonly databasePath: string,
    readonly profile: KeyProfile,
    readonly host: BackupHost,
    readonly copies: DatabaseCopies,
    readonly log: Logger,
    readonly clock: () => Date,
  ) {
    this.files = host.files;
    this.verifyContext = { files: host.files, open: (path, o) => host.open(path, o), profile, databasePath, checkPages: host.checkPages };
  }

  verify(path: string, material: KeyMaterial, onProgress?: OnProgress, depth: VerifyDepth = 'full', pagesChecked?: PageCheck | null): Promise<VerifyResult> {
    return verifyFile(this.verifyContext, path, material, (done, total) => onProgress?.({ phase: 'verify', bytesDone: done, bytesTotal: total }), depth, pagesChecked);
  }

  /** Verifies a file with the key the profile makes from `secret` for it; a key that cannot be made is a failure, not a throw. */
  async verifyWith(secret: KeyMaterial, path: string, onProgress?: OnProgress): Promise<VerifyResult> {
    let material: KeyMaterial;
    try {
      material = await this.profile.keyFor(secret, this.files, path, this.databasePath);
    } catch (e) {
      if (!(await this.files.stat(path))) return { ok: false, reason: 'missing', detail: `no such file: ${path}` };
      return { ok: false, reason: 'wrong-key', detail: messageOf(e) };
    }
    return this.verify(path, material, onProgress);
  }

  /** Operations that replace the database refuse while anyone else may have it open. */
  async refuseIfInUse(what: string): Promise<void> {
    const reason = await this.files.inUse?.(this.databasePath);
    if (reason) throw new InUseError(`cannot ${what} ${this.files.basename(this.databasePath)} while it is in use: ${reason}; close it everywhere first`);
  }

  /** A backup of another database (another salt) is not put in this one's place unless the caller says so. */
  async refuseOtherDatabase(path: string, what: string): Promise<void> {
    const [mine, theirs] = await Promise.all([identityOf(this.files, this.databasePath), identityOf(this.files, path)]);
    // A backup without the profile's sidecars (the reference app's own, from sqlcipher_export, has a salt of
    // its own) is keyed by this database's sidecars: that it verifies under them is what makes it this database's.
    const keyedByOurs = this.profile.sidecars.length > 0 && !(await this.files.stat(`${path}${this.profile.sidecars[0]}`));
    if (mine && theirs && !sameIdentity(mine, theirs) && !keyedByOurs) {
      throw new OtherDatabaseError(`cannot ${what} ${this.files.basename(path)}: it is a backup of another database (its salt differs from ${this.files.basename(this.databasePath)}'s)${what === 'restore' ? '; pass allowOtherDatabase to restore it anyway' : ''}`);
    }
  }

  /** Fails closed: a copy we cannot be sure fits (twice its size) is not attempted. */
  async checkFreeSpace(dir: string, size: number): Promise<void> {
    let free: number;
    try {
      free = await this.files.freeSpace(dir);
    } catch (e) {
      throw new CipherkeepError(`could not verify free space in ${dir}: ${messageOf(e)}`);
    }
    if (free < size * 2) {
      throw new StorageFullError(`insufficient space in ${dir}: need ${size * 2} bytes (twice the database), have ${free}`);
    }
  }

  async removeWithSidecars(path: string): Promise<boolean> {
    const removed = await this.removeQuietly(path);
    for (const s of this.profile.sidecars) await this.removeQuietly(`${path}${s}`);
    return removed;
  }

  async removeAll(paths: string[]): Promise<void> {
    for (const p of paths) await this.removeQuietly(p);
  }

  /** Files may vanish under us (another cleanup); that is not an error. */
  async removeQuietly(path: string): Promise<boolean> {
    try {
      return await this.files.remove(path);
    } catch (e) {
      this.log.warn(`could not delete ${this.files.basename(path)}: ${messageOf(e)}`);
      return false;
    }
  }
}

/** The stable code of a failure: ours, or a host error (errno) mapped to one of ours, never a raw errno. */
export function codeOf(e: unknown): string {
  if (e instanceof CipherkeepError) return e.code;
  return fromHostError(e, '')?.code ?? 'INTERNAL';
}
