/**
 * Typed errors. Messages name files and SQLite result codes but never a key,
 * passphrase or derived secret: callers may log them freely.
 */

/**
 * Base class: `code` is a stable string for programs, `message` is for people.
 * Each class spells out its `name`: minifiers rename classes, so neither
 * `name` nor a match across the worker boundary may come from `constructor.name`.
 */
export class CipherkeepError extends Error {
  override name = 'CipherkeepError';
  readonly code: string = 'CIPHERKEEP';
  /** SQLite primary or extended result code, when SQLite produced the error. */
  readonly sqliteCode: number | undefined;
  constructor(message: string, options?: { sqliteCode?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.sqliteCode = options?.sqliteCode;
  }
}

/** The key does not decrypt the file, or the file is not a cipherkeep/SQLCipher database. */
export class WrongKeyError extends CipherkeepError {
  override name = 'WrongKeyError';
  override readonly code = 'WRONG_KEY';
}

/** The file is a plain, unencrypted SQLite database. cipherkeep never opens those. */
export class NotEncryptedError extends CipherkeepError {
  override name = 'NotEncryptedError';
  override readonly code = 'NOT_ENCRYPTED';
}

/** The file decrypts but its content is damaged, or it is truncated or empty. */
export class CorruptDatabaseError extends CipherkeepError {
  override name = 'CorruptDatabaseError';
  override readonly code = 'CORRUPT';
}

/** The database file does not exist and `create` was not requested. */
export class DatabaseNotFoundError extends CipherkeepError {
  override name = 'DatabaseNotFoundError';
  override readonly code = 'NOT_FOUND';
}

/** The directory that should hold the database does not exist. Nothing was created. */
export class MissingDirectoryError extends CipherkeepError {
  override name = 'MissingDirectoryError';
  override readonly code = 'MISSING_DIRECTORY';
}

/** Another connection held a lock for longer than the busy timeout. */
export class BusyError extends CipherkeepError {
  override name = 'BusyError';
  override readonly code = 'BUSY';
}

/** The disk or storage quota is full. */
export class StorageFullError extends CipherkeepError {
  override name = 'StorageFullError';
  override readonly code = 'STORAGE_FULL';
}

/** The database, statement or engine was used after `close()`. */
export class ClosedError extends CipherkeepError {
  override name = 'ClosedError';
  override readonly code = 'CLOSED';
}

/** The options passed in are invalid (bad key length, conflicting settings...). */
export class InvalidArgumentError extends CipherkeepError {
  override name = 'InvalidArgumentError';
  override readonly code = 'INVALID_ARGUMENT';
}

/** The wasm engine failed its checksum or could not be loaded. */
export class EngineLoadError extends CipherkeepError {
  override name = 'EngineLoadError';
  override readonly code = 'ENGINE_LOAD';
}

/** Any other SQLite error (syntax, constraint, ...), with its result code. */
export class SqliteError extends CipherkeepError {
  override name = 'SqliteError';
  override readonly code = 'SQLITE';
}

/** A lock (in this process or another) was not released within the timeout. */
export class LockTimeoutError extends CipherkeepError {
  override name = 'LockTimeoutError';
  override readonly code = 'LOCK_TIMEOUT';
}

type ErrorClass = new (message: string, options?: { sqliteCode?: number; cause?: unknown }) => CipherkeepError;

const byCode = new Map<string, ErrorClass>();

/** Makes `code` rebuild as `Class` across a worker boundary (cipherkeep's own classes are registered below). */
export function registerErrorCode(code: string, Class: ErrorClass): void {
  byCode.set(code, Class);
}

/** The class an error `code` stands for, if it is one of the registered ones. */
export function errorClassForCode(code: string | undefined): ErrorClass | undefined {
  return code === undefined ? undefined : byCode.get(code);
}

for (const Class of [
  CipherkeepError, WrongKeyError, NotEncryptedError, CorruptDatabaseError, DatabaseNotFoundError, MissingDirectoryError,
  BusyError, StorageFullError, ClosedError, InvalidArgumentError, EngineLoadError, SqliteError, LockTimeoutError,
]) {
  registerErrorCode(new Class('').code, Class);
}
