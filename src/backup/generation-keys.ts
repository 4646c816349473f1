/**
 * What the service keeps about its page store outside the sealed manifests:
 * the rollback anchor (the last generation it committed, kept beside the
 * database, outside the store, so a store rolled back as a whole is caught)
 * and the database's salt, noted in the store in the clear (it is in the
 * clear at the start of every SQLCipher file too), so that a password still
 * opens the generations after the database itself is lost.
 */
import { deriveKey, resolveSettings, SALT_BYTES, type KeyMaterial } from '../engine/cipher.ts';
import { CorruptDatabaseError, DatabaseNotFoundError } from '../engine/errors.ts';
import type { FileStore } from '../files/file-store.ts';
import { identityOf } from './catalog.ts';
import type { KeyProfile } from './key-profiles.ts';
import { fromHex, toHex } from '../engine/bytes.ts';
import { deriveStoreKeys } from './page-store/seal.ts';
import { scanStore, type Anchor } from './page-store/state.ts';
import type { JournalMode } from '../engine/database.ts';

const SALT_NOTE_PREFIX = 'salt-';
const ANCHOR_MAX_BYTES = 4096;

/**
 * The anchor as kept: which key's generations it speaks for (the store's
 * public key id), and the newest one committed — with, as a hint, the
 * database's journal mode then (a WAL-mode database is copied first).
 */
export interface KeptAnchor extends Required<Anchor> {
  keyId: string;
  journalMode?: JournalMode;
}

export class GenerationKeys {
  constructor(
    private readonly files: FileStore,
    private readonly profile: KeyProfile,
    private readonly databasePath: string,
    /** The page store's directory. */
    private readonly dir: string,
    /** Where the anchor is kept: beside the database. */
    readonly anchorPath: string,
  ) {}

  /** The store's public id of a raw key (what manifest headers carry). */
  static async keyIdOf(raw: Uint8Array): Promise<string> {
    return toHex((await deriveStoreKeys(raw)).keyId);
  }

  /** The anchor for generations under `keyId`; none when there is none kept or it is another key's (a rekey outside the service). */
  async anchorFor(keyId: string): Promise<Anchor | undefined> {
    const kept = await this.readAnchor();
    return kept && kept.keyId === keyId ? { seq: kept.seq, digest: kept.digest } : undefined;
  }

  async readAnchor(): Promise<KeptAnchor | null> {
    if (!(await this.files.stat(this.anchorPath))) return null;
    const bytes = await this.files.read(this.anchorPath, 0, ANCHOR_MAX_BYTES);
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      parsed = null;
    }
    const a = parsed as Partial<KeptAnchor> | null;
    if (!a || !Number.isSafeInteger(a.seq) || a.seq! < 1 || !/^[0-9a-f]{64}$/.test(String(a.digest)) || !/^[0-9a-f]{32}$/.test(String(a.keyId))) {
      throw new CorruptDatabaseError(`the incremental backups' anchor ${this.files.basename(this.anchorPath)} is damaged; delete it to accept the page store as it is now`);
    }
    return { seq: a.seq!, digest: a.digest!, keyId: a.keyId!, ...(a.journalMode === 'wal' || a.journalMode === 'delete' ? { journalMode: a.journalMode } : {}) };
  }

  /**
   * Replaced in one step (written beside it, then renamed): a crash leaves
   * the old anchor or the new one, and a temporary file the next write of a
   * holding that is over (`lock`: the database's lock) removes.
   */
  async writeAnchor(anchor: KeptAnchor, lock: { token: string; mayBeAlive(token: string): Promise<boolean> }): Promise<void> {
    const name = this.files.basename(this.anchorPath);
    for (const f of await this.files.list(this.files.dirname(this.anchorPath), `${name}.`)) {
      const token = f.name.endsWith('.tmp') ? f.name.slice(name.length + 1, -'.tmp'.length) : '';
      if (!/^[A-Za-z0-9-]{1,64}$/.test(token)) continue;
      if (token === lock.token || !(await lock.mayBeAlive(token))) await this.files.remove(this.files.join(this.files.dirname(this.anchorPath), f.name));
    }
    const tmp = `${this.anchorPath}.${lock.token}.tmp`;
    const writer = await this.files.create(tmp);
    try {
      await writer.write(new TextEncoder().encode(JSON.stringify({ keyId: anchor.keyId, seq: anchor.seq, digest: anchor.digest, journalMode: anchor.journalMode })));
      await writer.close();
    } catch (e) {
      await writer.abort().catch(() => {});
      throw e;
    }
    await this.files.restrictToOwner(tmp, 'file');
    await this.files.rename(tmp, this.anchorPath);
  }

  async dropAnchor(): Promise<void> {
    await this.files.remove(this.anchorPath);
  }

  /** Notes `salt` in the store (an empty file named by it); with `only`, forgets every other salt. */
  async noteSalt(salt: Uint8Array, only = false): Promise<void> {
    const name = `${SALT_NOTE_PREFIX}${toHex(salt)}`;
    for (const s of await this.files.list(this.dir, SALT_NOTE_PREFIX)) {
      if (only && s.name !== name) await this.files.remove(this.files.join(this.dir, s.name));
    }
    if (await this.files.stat(this.files.join(this.dir, name))) return;
    const writer = await this.files.create(this.files.join(this.dir, name));
    await writer.close();
  }

  async forgetSalts(): Promise<void> {
    for (const s of await this.files.list(this.dir, SALT_NOTE_PREFIX)) await this.files.remove(this.files.join(this.dir, s.name));
  }

  /**
   * The raw key that opens the store's generations: a raw key as given;
   * from a password, derived with the database's salt, or (the database lost
   * or rekeyed since) with a salt noted in the store — the one whose key id a
   * manifest carries. Without a match, the database's key (its generations:
   * none) so listings still say what is there.
   */
  async readKey(secret: KeyMaterial): Promise<Uint8Array> {
    const material = await this.profile.keyFor(secret, this.files, this.databasePath);
    if (material.key !== undefined) return material.key;
    const settings = resolveSettings(this.profile.cipher);
    const held = new Set((await scanStore(this.files, this.dir)).manifests.flatMap((m) => (m.header ? [toHex(m.header.keyId)] : [])));
    const salts = new Map<string, Uint8Array>();
    const own = await identityOf(this.files, this.databasePath);
    if (own && own.length === SALT_BYTES) salts.set(toHex(own), own);
    for (const s of await this.files.list(this.dir, SALT_NOTE_PREFIX)) {
      const m = /^salt-([0-9a-f]{32})$/.exec(s.name);
      if (m) salts.set(m[1]!, fromHex(m[1]!));
    }
    let first: Uint8Array | undefined;
    for (const salt of salts.values()) {
      const raw = await deriveKey(material, salt, settings);
      first ??= raw;
      if (held.has(await GenerationKeys.keyIdOf(raw))) return raw;
    }
    if (first) return first;
    throw new DatabaseNotFoundError(`no incremental backups to open: ${this.files.basename(this.databasePath)} is missing and the page store notes no salt`);
  }
}
