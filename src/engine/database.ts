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
  MissingDirectoryError, NotEncryptedError, SqliteError, StorageFullError, WrongKeyError, CipherkeepError,
} from './errors.ts';
import type { Engine } from './engine.ts';
import type { HostVFS } from '../vfs/host-vfs.ts';

export type SqlValue = number | bigint | string | Uint8Array | boolean | null;
/** Positional (`?`) or named (`:name`, `@name`, `$name`; keys given without the prefix) parameters. */
export type Params = readonly SqlValue[] | Readonly<Record<string, SqlValue>>;
export type Row = Record<string, SqlValue>;
export interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

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

const PLAIN_SQLITE_HEADER = new TextEncoder().encode('SQLite format 3\0');

export async function openDatabase(engine: Engine, vfsName: string, path: string, options: OpenOptions): Promise<Database> {
  validateKeyMaterial(options);
  const settings = resolveSettings(options.cipher);
  if (options.create && options.readonly) throw new InvalidArgumentError('create and readonly exclude each other');
  const host = engine.hostFor(vfsName);
  const fullPath = host.resolve(path);
  const { created } = await host.prepare(fullPath, !!options.create);
  try {
    return await openPrepared(engine, host, vfsName, fullPath, created, settings, options);
  } catch (e) {
    await host.release(fullPath);
    throw e;
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
    salt = newSalt();
  } else if (info.size === 0) {
    if (!options.create) throw new CorruptDatabaseError(`database file is empty: ${fullPath}`);
    salt = newSalt();
  } else {
    const header = new Uint8Array(SALT_BYTES);
    const read = host.readRange(fullPath, 0, header) ?? 0;
    if (read === SALT_BYTES && header.every((b, i) => b === PLAIN_SQLITE_HEADER[i])) {
      throw new NotEncryptedError(`not an encrypted database (plain SQLite): ${fullPath}`);
    }
    if (info.size % 512 !== 0 || info.size < 512) {
      throw new CorruptDatabaseError(`database file is truncated or damaged (${info.size} bytes is not whole pages): ${fullPath}`);
    }
    salt = header;
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
  #queue: Promise<unknown> = Promise.resolve();
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
  }

  /** @internal Keys the connection and proves the key works. */
  async _applyKey(key: Uint8Array, isNew: boolean, journalMode: JournalMode): Promise<void> {
    await this.#serial(async () => {
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
    return this.#serial(() => this.#run(sql));
  }

  /** Runs a statement and returns its rows as objects keyed by column name. */
  query<T extends Row = Row>(sql: string, params?: Params): Promise<T[]> {
    return this.#serial(() => this.#query<T>(sql, params));
  }

  /** Runs a statement that changes data; returns the change count and last rowid. */
  run(sql: string, params?: Params): Promise<RunResult> {
    return this.#serial(() => this.#runResult(sql, params));
  }

  /**
   * Runs `fn` inside BEGIN IMMEDIATE ... COMMIT; rolls back if it throws.
   * Use the `tx` it is given: calls on the Database itself wait for the end.
   */
  transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.#serial(async () => {
      await this.#run('BEGIN IMMEDIATE');
      let open = true;
      const guard = <A extends unknown[], R>(f: (...a: A) => Promise<R>) => (...a: A) => {
        if (!open) return Promise.reject(new ClosedError('transaction already ended'));
        return f(...a);
      };
      const tx: Transaction = {
        exec: guard((sql: string) => this.#run(sql)),
        query: guard((sql: string, params?: Params) => this.#query(sql, params)) as Transaction['query'],
        run: guard((sql: string, params?: Params) => this.#runResult(sql, params)),
      };
      try {
        const result = await fn(tx);
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
   * Changes the key, re-encrypting every page in one SQLite transaction. The
   * salt stays, given explicitly (sqlite3mc would otherwise draw a new one
   * and our derived key would no longer match what SQLCipher derives from the
   * password); keeping it also lets a crash mid-rekey roll back under the old
   * password. WAL databases are switched to DELETE for the rekey (sqlite3mc
   * 2.3.3 cannot rekey in WAL) and back. For a password change that is
   * atomic on disk, use BackupService.changePassword (rekeys a copy, then
   * renames it into place).
   */
  rekey(material: KeyMaterial): Promise<void> {
    return this.#serial(async () => {
      const key = await deriveKey(material, this.#salt, this.#settings);
      try {
        const wal = (await this.#journalMode()) === 'wal';
        if (wal) await this.#run('PRAGMA journal_mode = DELETE');
        try {
          await this.#run(`PRAGMA rekey = ${rawKeyLiteral(key, this.#salt)}`);
        } catch (e) {
          throw new CipherkeepError('rekey failed', { sqliteCode: codeOf(e) });
        } finally {
          if (wal) await this.#run('PRAGMA journal_mode = WAL');
        }
      } finally {
        key.fill(0);
      }
    });
  }

  /** Reads raw (still encrypted) bytes of the file at `offset` into `into`, beside SQLite; returns the count. */
  readRaw(offset: number, into: Uint8Array): number {
    return this.host.readRange(this.path, offset, into) ?? 0;
  }

  /** Reports the size of every page read SQLite makes on this file (progress of long reads). */
  watchReads(onRead: (bytes: number) => void): () => void {
    return this.host.watchReads(this.path, onRead);
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

  /** Closes the connection. Safe to call more than once. */
  async close(): Promise<void> {
    await this.#queue.catch(() => {});
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

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(async () => {
      this.#live();
      await this.host.enter(this.path);
      try {
        return await fn();
      } finally {
        this.host.exit(this.path);
      }
    });
    this.#queue = next.catch(() => {});
    return next;
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
    const handle = this.#live();
    const { module } = this.engine;
    // wa-sqlite's last_insert_id drops the high 32 bits; read both halves.
    const lo = module._sqlite3_last_insert_rowid(handle) >>> 0;
    const hi = module.getTempRet0() | 0;
    const rowid = hi === 0 ? lo : BigInt(hi) * 2n ** 32n + BigInt(lo);
    return {
      changes: this.engine.sqlite3.changes(handle),
      lastInsertRowid: typeof rowid === 'bigint' && rowid <= BigInt(Number.MAX_SAFE_INTEGER) && rowid >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(rowid) : rowid,
    };
  }

  // Steps every statement in `sql`; statements are finalized by the iterator on every path.
  async #each(sql: string, params: Params | undefined, onRow: (row: Row) => void): Promise<void> {
    const { sqlite3 } = this.engine;
    const handle = this.#live();
    try {
      for await (const stmt of sqlite3.statements(handle, sql)) {
        if (params !== undefined) bindAll(sqlite3, stmt, params);
        const deadline = Date.now() + this.busyTimeoutMs;
        let columns: string[] | undefined;
        let gotRow = false;
        // Short, capped waits: a connection that polls slowly loses every race
        // against busy writers of the same engine (measured: seconds per backup).
        for (let delay = 1; ; delay = Math.min(delay * 2, 4)) {
          try {
            while ((await sqlite3.step(stmt)) === SQLite.SQLITE_ROW) {
              gotRow = true;
              columns ??= sqlite3.column_names(stmt);
              const values = sqlite3.row(stmt);
              const row: Row = {};
              columns.forEach((c, i) => (row[c] = values[i] as SqlValue));
              onRow(row);
            }
            break;
          } catch (e) {
            // Another connection of this engine holds the lock; it can only let go
            // if we yield to the event loop, so wait asynchronously and retry.
            if (codeOf(e) !== SQLite.SQLITE_BUSY || gotRow || Date.now() > deadline) throw e;
            await sqlite3.reset(stmt).catch(() => {});
            await new Promise((r) => setTimeout(r, delay));
          }
        }
      }
    } catch (e) {
      throw toCipherkeepError(e, 'statement failed');
    }
  }
}

function bindAll(sqlite3: SQLiteAPI, stmt: number, params: Params): void {
  const count = sqlite3.bind_parameter_count(stmt);
  for (let i = 1; i <= count; i++) {
    let value: SqlValue | undefined;
    if (Array.isArray(params)) {
      value = (params as readonly SqlValue[])[i - 1];
    } else {
      const name = sqlite3.bind_parameter_name(stmt, i);
      value = (params as Record<string, SqlValue>)[name.slice(1)] ?? (params as Record<string, SqlValue>)[name];
    }
    if (value === undefined) throw new InvalidArgumentError(`no value for SQL parameter ${i}`);
    // Integers beyond 32 bits must bind as int64, not double (wa-sqlite's default).
    if (typeof value === 'number' && Number.isSafeInteger(value) && (value | 0) !== value) {
      sqlite3.bind_int64(stmt, i, BigInt(value));
    } else {
      sqlite3.bind(stmt, i, typeof value === 'boolean' ? Number(value) : value);
    }
  }
}

function codeOf(e: unknown): number | undefined {
  if (e instanceof CipherkeepError) return e.sqliteCode;
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Maps a SQLite error to the typed error a caller can act on. */
export function toCipherkeepError(e: unknown, context: string): Error {
  if (e instanceof CipherkeepError) return e;
  const code = codeOf(e);
  if (code === undefined) return e instanceof Error ? e : new CipherkeepError(`${context}: ${String(e)}`);
  const message = `${context}: ${(e as Error).message}`;
  const opts = { sqliteCode: code, cause: e };
  switch (code & 0xff) {
    case SQLite.SQLITE_BUSY:
    case SQLite.SQLITE_LOCKED:
      return new BusyError(message, opts);
    case SQLite.SQLITE_CORRUPT:
    case SQLite.SQLITE_NOTADB:
      return new CorruptDatabaseError(message, opts);
    case SQLite.SQLITE_FULL:
      return new StorageFullError(message, opts);
    default:
      return new SqliteError(message, opts);
  }
}
