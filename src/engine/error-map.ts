/**
 * Turns what SQLite, the wasm glue and the host's storage throw into the
 * typed errors of errors.ts, so every failure of the engine reaches callers
 * as a CipherkeepError with a documented code.
 */
import * as SQLite from '@journeyapps/wa-sqlite';
import {
  BusyError, CipherkeepError, CorruptDatabaseError, FileSystemError, InternalError, InvalidArgumentError, MissingDirectoryError,
  MissingModuleError, NotAFileError, PermissionDeniedError, SqliteError, StorageFullError, TooBigError,
} from './errors.ts';

/** The SQLite result code carried by an error, if any. */
export function codeOf(e: unknown): number | undefined {
  if (e instanceof CipherkeepError) return e.sqliteCode;
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Maps a SQLite (or storage) error to the typed error a caller can act on. */
export function toCipherkeepError(e: unknown, context: string): CipherkeepError {
  if (e instanceof CipherkeepError) return e;
  const code = codeOf(e);
  if (code === undefined) {
    return fromHostError(e, context) ?? new InternalError(`${context}: ${messageOf(e)}`, { cause: e });
  }
  const message = `${context}: ${messageOf(e)}`;
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
    case SQLite.SQLITE_TOOBIG:
      return new TooBigError(`${message} (larger than SQLite's length limit)`, opts);
    case SQLite.SQLITE_NOMEM:
      return new TooBigError(`${message} (the engine's memory, at most 2 GiB, is exhausted)`, opts);
    case SQLite.SQLITE_PERM:
    case SQLite.SQLITE_AUTH:
      return new PermissionDeniedError(message, opts);
    case SQLite.SQLITE_IOERR:
    case SQLite.SQLITE_CANTOPEN:
      return new FileSystemError(message, opts);
    default: {
      // The engine lacks FTS3/FTS4 and R-Tree (wasm/README.md): say so, not "SQL error".
      const missing = /no such module: (\w+)/.exec(messageOf(e))?.[1];
      if (missing) return new MissingModuleError(`${context}: this engine has no ${missing} module (it is built without FTS3/FTS4 and R-Tree), so it cannot read that table; the file itself is not damaged`, opts);
      return new SqliteError(message, opts);
    }
  }
}

/**
 * What the host's storage threw (a Node/Deno `errno` error or a browser
 * DOMException) as a typed error; null when it is neither.
 */
export function fromHostError(e: unknown, context: string): CipherkeepError | null {
  if (e instanceof CipherkeepError) return e;
  const code = (e as { code?: unknown })?.code;
  const errno = typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : undefined;
  const name = (e as { name?: unknown })?.name;
  const Class = HOST_ERRORS[errno ?? (typeof name === 'string' ? name : '')];
  const message = `${context}: ${messageOf(e)}`;
  if (Class) return new Class(message, { cause: e });
  return errno ? new FileSystemError(message, { cause: e }) : null;
}

const HOST_ERRORS: Record<string, new (message: string, options?: { cause?: unknown }) => CipherkeepError> = {
  EISDIR: NotAFileError,
  ELOOP: NotAFileError,
  TypeMismatchError: NotAFileError, // OPFS: a directory where a file was asked for
  ENOTDIR: MissingDirectoryError, // a file where a directory of the path should be
  EACCES: PermissionDeniedError,
  EPERM: PermissionDeniedError,
  EROFS: PermissionDeniedError,
  NotAllowedError: PermissionDeniedError,
  SecurityError: PermissionDeniedError,
  ENOSPC: StorageFullError,
  EDQUOT: StorageFullError,
  QuotaExceededError: StorageFullError,
  ENAMETOOLONG: InvalidArgumentError,
  NoModificationAllowedError: BusyError, // OPFS: another tab holds the file's access handle
};

export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
