/**
 * An encrypted database connection: open with a password or raw key, run SQL,
 * change the key, close. Calls on one Database run one at a time, in order.
 */
import * as SQLite from '@journeyapps/wa-sqlite';
import {
  cipherPragmas, deriveKey, newSalt, rawKeyLiteral, resolveSettings, validateKeyMaterial,
  SALT_BYTES, type CipherSettings, type KeyMaterial,
} from './cipher.ts';
import {
  BusyError, ClosedError, CorruptDatabaseError, DatabaseNotFoundError, InvalidArgumentError,
  MissingDirectoryError, NotEncryptedError, PlaintextHeaderError, WrongKeyError,
} from './errors.ts';
import { codeOf, toCipherkeepError } from './error-map.ts';
import { eachRow, lastChange, type Row, type RunResult } from './statements.ts';
import type { Params } from './values.ts';
import { CallQueue } from './call-queue.ts';
import { copyFile } from './logical-copy.ts';
import type { Engine } from './engine.ts';
import type { HostVFS } from '../vfs/host-vfs.ts';

export type { Params, SqlValue } from './values.ts';
export type { Row, RunResult } from './statements.ts';

export type JournalMode = 'delete' | 'wal';

export type OpenOptions = KeyMaterial & {
  /** Create the file when it does not exist (default false). */
  create?: boolean;
  readonly?: boolean;
  cipher?: CipherSettings;
  /** Journal mode set when the database is created (default 'delete'). */
  journalMode?: JournalMode;
  /** How long to wait for another connection's lock before BusyError (default 5000 ms). */
  busyTimeoutMs?: number;
};

/** The statements available inside `transaction()`. */
export interface Transaction {
  exec(sql: string): Promise<void>;
  query<T extends Row = Row>(sql: string, params?: Params): Promise<T[]>;
  run(sql: string, params?: Params): Promise<RunResult>;
}

const PAGE1_PROBE_BYTES = 101;

/**
 * What the start of a file says: 'plain' SQLite (its header and page 1's
 * b-tree header are readable), 'plaintext-header' (a readable SQLite header,
 * then ciphertext: SQLCipher's cipher_plaintext_header_size), or 'encrypted'
 * (a salt). A SQLCipher page reserves at least 16 bytes (its IV; offset 20
 * says how many), and page 1 of plain SQLite has the writing library's
 * version (3xxxyyy) at offset 96 and a b-tree page type at 100; ciphertext
 * passes both by chance about once in 10^9.
 */
export function headerKind(bytes: Uint8Array): 'plain' | 'plaintext-header' | 'encrypted' {
  if (!PLAIN_SQLITE_HEADER.every((b, i) => bytes[i] === b)) return 'encrypted';
  if (bytes.length < PAGE1_PROBE_BYTES || bytes[20]! < 16) return 'plain';
  const version = new DataView(bytes.buffer, bytes.byteOffset).getUint32(96);
  const pageType = bytes[100]!;
  return version >= 3_000_000 && version < 4_000_000 && [2, 5, 10, 13].includes(pageType) ? 'plain' : 'plaintext-header';
}

const PLAIN_SQLITE_HEADER = new TextEncoder().encode('SQLite format 3\0');

export async function openDatabase(engine: Engine, vfsName: string, path: string, options: OpenOptions): Promise<Database> {
  if (typeof path !== 'string' || path === '' || path.includes('\0')) {
    throw new InvalidArgumentError('a database path must be a non-empty string without NUL characters');
  }
  validateKeyMaterial(options);
  const settings = resolveSettings(options.cipher);
  if (options.create && options.readonly) throw new InvalidArgumentError('create and readonly exclude each other');
  const host = engine.hostFor(vfsName);
  const fullPath = host.resolve(path);
  // What the host's storage throws (EISDIR, EACCES, a DOMException …) becomes a typed error.
  const typed = (e: unknown) => toCipherkeepError(e, `cannot open ${fullPath}`);
  const { created } = await host.prepare(fullPath, !!options.create).catch((e) => Promise.reject(typed(e)));
  try {
    return await openPrepared(engine, host, vfsName, fullPath, created, settings, options);
  } catch (e) {
    await host.release(fullPath);
    throw typed(e);
  }
}

async function openPrepared(
  engine: Engine, host: HostVFS<unknown>, vfsName: string, fullPath: string, created: boolean,
  settings: Required<CipherSettings>, options: OpenOptions,
): Promise<Database> {
  const info = host.info(fullPath);

  // Decide everything we can before SQLite touches the file, so a bad open
  // creates and changes nothing.
  let salt: Uint8Array;
  const isNew = info.size === null || info.size === 0;
  if (info.size === null) {
    if (!options.create) throw new DatabaseNotFoundError(`database not found: ${fullPath}`);
    if (!info.parentExists) throw new MissingDirectoryError(`directory does not exist for database: ${fullPath}`);
    salt = settings.salt?.slice() ?? newSalt();
  } else if (info.size === 0) {
    if (!options.create) throw new CorruptDatabaseError(`database file is empty: ${fullPath}`);
    salt = settings.salt?.slice() ?? newSalt();
  } else {
    const header = new Uint8Array(PAGE1_PROBE_BYTES);
    const read = host.readRange(fullPath, 0, header) ?? 0;
    const kind = read >= SALT_BYTES ? headerKind(header.subarray(0, read)) : 'encrypted';
    if (kind === 'plain') throw new NotEncryptedError(`not an encrypted database (plain SQLite): ${fullPath}`);
    if (kind === 'plaintext-header' && settings.plaintextHeaderSize === 0) {
      throw new PlaintextHeaderError(`a SQLCipher database with a plaintext SQLite header (cipher_plaintext_header_size): open it with plaintextHeaderSize: 32 and its 16-byte salt (CLI --plaintext-header 32 --salt HEX): ${fullPath}`);
    }
    if (info.size % 512 !== 0 || info.size < 512) {
      throw new CorruptDatabaseError(`database file is truncated or damaged (${info.size} bytes is not whole pages): ${fullPath}`);
    }
    salt = settings.plaintextHeaderSize > 0 ? settings.salt!.slice() : header.slice(0, SALT_BYTES);
  }

  const key = await deriveKey(options, salt, settings);
  const flags = options.readonly
    ? SQLite.SQLITE_OPEN_READONLY
    : SQLite.SQLITE_OPEN_READWRITE | (isNew ? SQLite.SQLITE_OPEN_CREATE : 0);
  let handle: number;
  try {
    handle = await engine.open(fullPath, flags, vfsName);
  } catch (e) {
    throw toCipherkeepError(e, `cannot open ${fullPath}`);
  }
  const db = new Database(engine, host, handle, fullPath, salt, settings, options.busyTimeoutMs ?? 5000);
  try {
    await db._applyKey(key, isNew, options.journalMode ?? 'delete');
  } catch (e) {
    await db._abandon();
    // A file this call created holds nothing yet: take it away again.
    if ((info.size === null || created) && host.info(fullPath).size === 0) host.deleteFile(fullPath);
    throw e;
  } finally {
    key.fill(0);
  }
  return db;
}

export class Database {
  #handle: number | null;
  readonly #queue: CallQueue;
  #settings: Required<CipherSettings>;
  #salt: Uint8Array;

  /** @internal use openDatabase() */
  constructor(
    private readonly engine: Engine,
    private readonly host: HostVFS<unknown>,
    handle: number,
    /** Absolute path of the database file as the VFS sees it. */
    readonly path: string,
    salt: Uint8Array,
    settings: Required<CipherSettings>,
    private readonly busyTimeoutMs: number,
  ) {
    this.#handle = handle;
    this.#salt = salt;
    this.#settings = settings;
    this.#queue = new CallQueue(busyTimeoutMs);
  }

  /** @internal Keys the connection and proves the key works. */
  async _applyKey(key: Uint8Array, isNew: boolean, journalMode: JournalMode): Promise<void> {
    await this.#serial('open', async () => {
      for (const sql of cipherPragmas(this.#settings)) await this.#run(sql);
      try {
        await this.#run(`PRAGMA key = ${rawKeyLiteral(key, this.#salt)}`);
      } catch (e) {
        // The SQLite message could quote the statement, and so the key.
        throw new WrongKeyError('the cipher layer rejected the key', { sqliteCode: codeOf(e) });
      }
      try {
        await this.#run('SELECT count(*) FROM sqlite_schema');
      } catch (e) {
        if (((codeOf(e) ?? 0) & 0xff) === SQLite.SQLITE_NOTADB) {
          throw new WrongKeyError('wrong key or not a cipherkeep/SQLCipher database', { sqliteCode: SQLite.SQLITE_NOTADB });
        }
        throw toCipherkeepError(e, 'cannot read the database');
      }
      if (isNew) {
        await this.#run(`PRAGMA journal_mode = ${journalMode === 'wal' ? 'WAL' : 'DELETE'}`);
        // Write page 1 now, so the file carries our salt from the moment it exists.
        await this.#run('PRAGMA user_version = 0');
      }
    });
  }

  /** Runs one or more statements, ignoring any rows. */
  exec(sql: string): Promise<void> {
    return this.#serial('exec()', () => this.#run(sql));
  }

  /** Runs a statement and returns its rows as objects keyed by column name. */
  query<T extends Row = Row>(sql: string, params?: Params): Promise<T[]> {
    return this.#serial('query()', () => this.#query<T>(sql, params));
  }

  /** Runs a statement that changes data; returns the change count and last rowid. */
  run(sql: string, params?: Params): Promise<RunResult> {
    return this.#serial('run()', () => this.#runResult(sql, params));
  }

  /**
   * Runs `fn` inside BEGIN IMMEDIATE ... COMMIT; rolls back if it throws.
   * Use the `tx` it is given. Calls on the Database itself wait for the end
   * of the transaction; made from inside `fn` they would wait forever, so
   * they fail instead (see CallQueue): at once with DeadlockError when made
   * before `fn`'s first `await`, else with BusyError once the transaction
   * has sat idle for the busy timeout.
   */
  transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.#serial('transaction()', async () => {
      await this.#run('BEGIN IMMEDIATE');
      let open = true;
      const guard = <A extends unknown[], R>(f: (...a: A) => Promise<R>) => (...a: A) => {
        if (!open) return Promise.reject(new ClosedError('transaction already ended'));
        return this.#queue.active(() => f(...a));
      };
      const tx: Transaction = {
        exec: guard((sql: string) => this.#run(sql)),
        query: guard((sql: string, params?: Params) => this.#query(sql, params)) as Transaction['query'],
        run: guard((sql: string, params?: Params) => this.#runResult(sql, params)),
      };
      try {
        const result = await this.#queue.runCallback(() => fn(tx));
        await this.#run('COMMIT');
        return result;
      } catch (e) {
        if (!this.engine.sqlite3.get_autocommit(this.#live())) await this.#run('ROLLBACK').catch(() => {});
        throw e;
      } finally {
        open = false;
      }
    });
  }

  /**
   * Changes the key, re-encrypting every page in one SQLite transaction,
   * under a fresh random salt: the new key shares nothing with the old one,
   * and a file's salt never outlives its password. The salt is drawn here and
   * handed over with the key (as at creation), so the key we derive is the
   * one SQLCipher derives from the password and the file's new first 16
   * bytes. WAL databases are switched to DELETE for the rekey (sqlite3mc
   * 2.3.3 cannot rekey in WAL) and back. For a password change that is
   * atomic on disk, use BackupService.changePassword (rekeys a copy, then
   * renames it into place). `keepSalt` keeps the salt instead: the backup
   * service does, because the salt is how a database's backups are known
   * as its own (catalog.ts). A file with a plaintext header always keeps
   * its salt (it is not in the file: whoever opens it supplies it). A
   * SQLCipher 3 file cannot be rekeyed in place (sqlite3mc 2.3.3 answers
   * every rekey of that format with SQLITE_NOTADB): this throws
   * InvalidArgumentError, and BackupService.changePassword (CLI rotate-key)
   * changes its key instead by copying it into a new file under the new key
   * (copyFrom, as sqlcipher_export does) and renaming that into place.
   */
  rekey(material: KeyMaterial, options: { keepSalt?: boolean } = {}): Promise<void> {
    return this.#serial('rekey()', async () => {
      if (this.#settings.compatibility === 3) {
        // sqlite3mc (2.3.3) answers every rekey of a legacy-format file with SQLITE_NOTADB.
        throw new InvalidArgumentError('the engine cannot change the key of a SQLCipher 3 file in place: use BackupService.changePassword (CLI rotate-key), which copies it into a new file under the new key');
      }
      // A file with a plaintext header does not hold its salt: its owner keeps it, so it must not change.
      const salt = options.keepSalt || this.#settings.plaintextHeaderSize > 0 ? this.#salt : newSalt();
      const key = await deriveKey(material, salt, this.#settings);
      try {
        const wal = (await this.#journalMode()) === 'wal';
        if (wal) await this.#run('PRAGMA journal_mode = DELETE');
        try {
          await this.#run(`PRAGMA rekey = ${rawKeyLiteral(key, salt)}`);
          this.#salt = salt;
        } catch (e) {
          // Not the SQLite message: it could quote the statement, and so the key.
          throw toCipherkeepError({ code: codeOf(e) ?? SQLite.SQLITE_ERROR, message: 'rekey failed' }, 'rekey');
        } finally {
          if (wal) await this.#run('PRAGMA journal_mode = WAL');
        }
      } finally {
        key.fill(0);
      }
    });
  }

  /**
   * Fills this database, new and empty, with everything in the one at
   * `sourcePath` (same cipher settings, opened with `sourceKey`), table by
   * table as SQLCipher's sqlcipher_export() does (logical-copy.ts). A new
   * file opened under the new key and filled so is how a SQLCipher 3 file
   * changes its key (see rekey).
   */
  copyFrom(sourcePath: string, sourceKey: KeyMaterial): Promise<void> {
    validateKeyMaterial(sourceKey);
    const sql = { run: (q: string) => this.#run(q), query: <T extends Row>(q: string, p?: Params) => this.#query<T>(q, p) };
    return this.#serial('copyFrom()', () => copyFile(sql, this.host, this.path, sourcePath, sourceKey));
  }

  /** Reads raw (still encrypted) bytes of the file at `offset` into `into`, beside SQLite; returns the count. */
  readRaw(offset: number, into: Uint8Array): number {
    return this.host.readRange(this.path, offset, into) ?? 0;
  }

  /** Reports the size of every page read SQLite makes on this file (progress of long reads). */
  watchReads(onRead: (bytes: number) => void): () => void {
    return this.host.watchReads(this.path, onRead);
  }

  /** Reports the span of every write SQLite makes to this file (a truncation: from the new size on). */
  watchWrites(onWrite: (offset: number, length: number) => void): () => void {
    return this.host.watchWrites(this.path, onWrite);
  }

  async #journalMode(): Promise<string> {
    const [row] = await this.#query<{ journal_mode: string }>('PRAGMA journal_mode');
    return String(row?.journal_mode ?? 'delete').toLowerCase();
  }

  /** @internal Closes the SQLite handle of a failed open; the caller releases the host. */
  async _abandon(): Promise<void> {
    const handle = this.#handle;
    this.#handle = null;
    if (handle !== null) await this.engine.sqlite3.close(handle).catch(() => {});
  }

  /** Closes the connection once every earlier call has finished. Safe to call more than once. */
  close(): Promise<void> {
    return this.#queue.enqueue(async () => {
      if (this.#handle === null) return;
      const handle = this.#handle;
      this.#handle = null;
      try {
        await this.engine.sqlite3.close(handle);
      } catch (e) {
        throw toCipherkeepError(e, 'close failed');
      } finally {
        await this.host.release(this.path);
      }
    }, 'close()');
  }

  get closed(): boolean {
    return this.#handle === null;
  }

  /** The file's KDF salt (first 16 bytes); not secret, but needed to derive keys. */
  get salt(): Uint8Array {
    return this.#salt.slice();
  }

  #live(): number {
    if (this.#handle === null) throw new ClosedError(`database is closed: ${this.path}`);
    return this.#handle;
  }

  #serial<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return this.#queue.enqueue(async () => {
      this.#live();
      await this.host.enter(this.path);
      try {
        return await fn();
      } finally {
        this.host.exit(this.path);
      }
    }, what);
  }

  async #run(sql: string): Promise<void> {
    await this.#each(sql, undefined, () => {});
  }

  async #query<T extends Row>(sql: string, params?: Params): Promise<T[]> {
    const rows: T[] = [];
    await this.#each(sql, params, (row) => rows.push(row as T));
    return rows;
  }

  async #runResult(sql: string, params?: Params): Promise<RunResult> {
    await this.#each(sql, params, () => {});
    return lastChange(this.engine, this.#live());
  }

  #each(sql: string, params: Params | undefined, onRow: (row: Row) => void): Promise<void> {
    return eachRow(this.engine, this.#live(), sql, params, this.busyTimeoutMs, onRow);
  }
}
