/**
 * The backups of one database in a directory: which files they are, the
 * next free name, and which ones retention deletes. A directory may hold
 * the backups of several databases (with the same prefix, too): a backup is
 * a byte copy, so it starts with its database's 16-byte salt, and only
 * backups whose first bytes match the database's are this database's.
 * Names never decide identity.
 */
import { SALT_BYTES } from '../engine/cipher.ts';
import type { FileInfo, FileStore } from '../files/file-store.ts';
import { backupName, parseBackupName } from './names.ts';

const DAY_MS = 86_400_000;

export interface Listed extends FileInfo {
  path: string;
  createdAt: Date;
  seq: number;
  tmp: boolean;
  token?: string;
}

/**
 * The first 16 bytes of a file (a SQLCipher database's salt), or null when it
 * does not exist. A file with a plaintext header (cipher_plaintext_header_size)
 * holds no salt: its first 16 bytes are SQLite's magic, the same for every
 * such file, so its backups match any other plaintext-header database's.
 * Nothing without the key can tell them apart (the rest of page 1 changes
 * with every write), so the README asks for one backup directory per
 * plaintext-header database; a restore of another one's backup still fails
 * verification under this database's key and salt.
 */
export async function identityOf(files: FileStore, path: string): Promise<Uint8Array | null> {
  if (!(await files.stat(path))) return null;
  return files.read(path, 0, SALT_BYTES);
}

export function sameIdentity(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === SALT_BYTES && a.length === b.length && a.every((x, i) => x === b[i]);
}

export class Catalog {
  constructor(
    private readonly files: FileStore,
    private readonly dir: string,
    private readonly prefix: string,
    private readonly onSkip: (name: string, why: string) => void = () => {},
  ) {}

  /**
   * Backups of the database whose salt is `identity` (every backup when it
   * is null: the database does not exist yet) and all temporary files,
   * newest first. Only regular files count: links and the like are skipped.
   */
  async list(identity: Uint8Array | null): Promise<Listed[]> {
    const entries: Listed[] = [];
    for (const f of await this.files.list(this.dir, `${this.prefix}_`, this.onSkip)) {
      const parsed = parseBackupName(this.prefix, f.name);
      if (!parsed) continue;
      const path = this.files.join(this.dir, f.name);
      if (!parsed.tmp && identity && !sameIdentity(identity, await this.files.read(path, 0, SALT_BYTES).catch(() => new Uint8Array(0)))) continue;
      entries.push({ ...f, ...parsed, path });
    }
    return entries.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || b.seq - a.seq);
  }

  /**
   * A name after every existing one of the same second, whoever's it is:
   * never a freed lower number, which would sort as the oldest and be
   * rotated away at once.
   */
  async freshName(now: Date): Promise<string> {
    const stamp = backupName(this.prefix, now);
    let seq = 0;
    for (const f of await this.files.list(this.dir, `${this.prefix}_`)) {
      const parsed = parseBackupName(this.prefix, f.name);
      if (parsed && backupName(this.prefix, parsed.createdAt) === stamp) seq = Math.max(seq, parsed.seq + 1);
    }
    return this.files.join(this.dir, backupName(this.prefix, now, seq));
  }
}

/**
 * What retention deletes from `backups` (newest first): beyond the newest
 * `maxBackups`, and older than `maxAgeDays` — except the newest, however old
 * (an old backup beats none).
 */
export function retentionVictims(backups: Listed[], now: Date, maxBackups: number, maxAgeDays: number): Array<{ backup: Listed; why: string }> {
  return backups.flatMap((backup, i) => {
    if (i >= maxBackups) return [{ backup, why: `beyond the newest ${maxBackups}` }];
    if (i > 0 && now.getTime() - backup.createdAt.getTime() > maxAgeDays * DAY_MS) return [{ backup, why: `older than ${maxAgeDays} days` }];
    return [];
  });
}
