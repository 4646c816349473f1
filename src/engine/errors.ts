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

/** Another process has the database open, so an operation that must replace it refuses. */
export class InUseError extends CipherkeepError {
  override name = 'InUseError';
  override readonly code = 'IN_USE';
}

/** A backup directory others could write to (no sticky bit): cipherkeep will not keep backups there. */
export class UnsafeDirectoryError extends CipherkeepError {
  override name = 'UnsafeDirectoryError';
  override readonly code = 'UNSAFE_DIRECTORY';
}

/** A backup of another database (its salt differs): restore and import refuse it unless told otherwise. */
export class OtherDatabaseError extends CipherkeepError {
  override name = 'OtherDatabaseError';
  override readonly code = 'OTHER_DATABASE';
}

/** A long operation was cancelled through its AbortSignal, or its input stalled past the stall timeout. */
export class AbortedError extends CipherkeepError {
  override name = 'AbortedError';
  override readonly code = 'ABORTED';
}

/** This process was paused past the lock's stale window and another took the lock over: it stopped before changing anything. */
export class LockLostError extends CipherkeepError {
  override name = 'LockLostError';
  override readonly code = 'LOCK_LOST';
}

/**
 * A backup target (e.g. S3-compatible storage) could not be reached: network
 * error, timeout, or server errors that outlasted the retries. Transient:
 * trying later may work. `status` is the last HTTP status, when there was one.
 */
export class TargetUnreachableError extends CipherkeepError {
  override name = 'TargetUnreachableError';
  override readonly code = 'TARGET_UNREACHABLE';
  constructor(message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options);
    this.status = options?.status;
  }
  readonly status: number | undefined;
}

/**
 * A backup target refused our credentials: wrong or expired keys, a bad
 * signature, no permission, or a clock too far from the store's
 * (`RequestTimeTooSkewed`; the message says so).
 */
export class TargetDeniedError extends CipherkeepError {
  override name = 'TargetDeniedError';
  override readonly code = 'TARGET_DENIED';
}

/** The target's bucket (or container) does not exist, or an object read by name is missing. */
export class TargetNotFoundError extends CipherkeepError {
  override name = 'TargetNotFoundError';
  override readonly code = 'TARGET_NOT_FOUND';
}

/** The target refused the request itself (e.g. a checksum mismatch, a part too small); not a matter of access. */
export class TargetRejectedError extends CipherkeepError {
  override name = 'TargetRejectedError';
  override readonly code = 'TARGET_REJECTED';
}

/**
 * A value, statement or result too large for the engine: past SQLite's
 * length limit (SQLITE_MAX_LENGTH, 1e9 bytes here) or past what the wasm
 * memory (at most 2 GiB) can hold. Nothing was written; the connection
 * stays usable.
 */
export class TooBigError extends CipherkeepError {
  override name = 'TooBigError';
  override readonly code = 'TOO_BIG';
}

/**
 * A call on a Database made from inside its own `transaction()` callback:
 * it would wait for the transaction that is waiting for it. Use the `tx`
 * the callback is given.
 */
export class DeadlockError extends CipherkeepError {
  override name = 'DeadlockError';
  override readonly code = 'DEADLOCK';
}

/** The path names a directory (or another thing that is not a regular file) where a database file should be. */
export class NotAFileError extends CipherkeepError {
  override name = 'NotAFileError';
  override readonly code = 'NOT_A_FILE';
}

/** The operating system (or the browser) refused access to a file or directory. */
export class PermissionDeniedError extends CipherkeepError {
  override name = 'PermissionDeniedError';
  override readonly code = 'PERMISSION_DENIED';
}

/** Any other failure of the file system or storage, with the system's own code in the message. */
export class FileSystemError extends CipherkeepError {
  override name = 'FileSystemError';
  override readonly code = 'IO';
}

/** The file to be created already exists; nothing was changed. */
export class AlreadyExistsError extends CipherkeepError {
  override name = 'AlreadyExistsError';
  override readonly code = 'ALREADY_EXISTS';
}

/** This browser lacks an API the call needs (File System Access's `showDirectoryPicker` in Firefox and Safari); use the fallback the message names. */
export class UnsupportedError extends CipherkeepError {
  override name = 'UnsupportedError';
  override readonly code = 'UNSUPPORTED';
}

/** Something failed that cipherkeep did not expect (a bug: please report it); the original error is the `cause`. */
export class InternalError extends CipherkeepError {
  override name = 'InternalError';
  override readonly code = 'INTERNAL';
}

type ErrorClass = new (message: string, options?: { sqliteCode?: number; cause?: unknown; status?: number }) => CipherkeepError;

const byCode = new Map<string, ErrorClass>();

/** Makes `code` rebuild as `Class` across a worker boundary (cipherkeep's own classes are registered below). */
export function registerErrorCode(code: string, Class: ErrorClass): void {
  byCode.set(code, Class);
}

/** The class an error `code` stands for, if it is one of the registered ones. */
export function errorClassForCode(code: string | undefined): ErrorClass | undefined {
  return code === undefined ? undefined : byCode.get(code);
}

// Every class above (test/error-wire.test.ts fails for one left out).
for (const Class of [
  CipherkeepError, WrongKeyError, NotEncryptedError, CorruptDatabaseError, DatabaseNotFoundError,
  MissingDirectoryError, BusyError, StorageFullError, ClosedError, InvalidArgumentError, EngineLoadError, SqliteError,
  LockTimeoutError, InUseError, UnsafeDirectoryError, OtherDatabaseError, AbortedError, LockLostError,
  TargetUnreachableError, TargetDeniedError, TargetNotFoundError, TargetRejectedError, TooBigError, DeadlockError,
  NotAFileError, PermissionDeniedError, FileSystemError, AlreadyExistsError, InternalError,
  UnsupportedError,
]) {
  registerErrorCode(new Class('').code, Class);
}

/**
 * A SQLCipher file whose first bytes are a readable SQLite header
 * (cipher_plaintext_header_size) was opened without `plaintextHeaderSize`
 * and its `salt`: it is encrypted, but does not carry its salt. Nothing was changed.
 */
export class PlaintextHeaderError extends CipherkeepError {
  override name = 'PlaintextHeaderError';
  override readonly code = 'PLAINTEXT_HEADER';
}

/** A table needs a SQLite module the engine was built without (FTS3/FTS4, R-Tree): the file is fine, this engine cannot read that table. */
export class MissingModuleError extends CipherkeepError {
  override name = 'MissingModuleError';
  override readonly code = 'MISSING_MODULE';
}

for (const Class of [PlaintextHeaderError, MissingModuleError]) registerErrorCode(new Class('').code, Class);
