/**
 * Values in and out of the engine, by byte length. wa-sqlite's own path
 * binds text as a NUL-terminated C string and reads it back the same way (a
 * NUL inside a string cut it short, silently), and it writes every text and
 * blob into memory it never checked it got (`_sqlite3_malloc` returning 0
 * meant "write at address 0": the engine was corrupt and the process died).
 * Here every length is explicit, every size is checked against SQLite's
 * limit before the engine sees it, and every allocation is checked.
 */
import * as SQLite from '@journeyapps/wa-sqlite';
import { InvalidArgumentError, TooBigError } from './errors.ts';
import { toCipherkeepError } from './error-map.ts';
import type { Engine } from './engine.ts';

export type SqlValue = number | bigint | string | Uint8Array | boolean | null;
/** Positional (`?`) or named (`:name`, `@name`, `$name`; keys given without the prefix) parameters. */
export type Params = readonly SqlValue[] | Readonly<Record<string, SqlValue>>;

const SQLITE_LIMIT_LENGTH = 0;
const SQLITE_LIMIT_SQL_LENGTH = 1;
const encoder = new TextEncoder();
// Not fatal: invalid UTF-8 that another program stored reads as U+FFFD rather than failing the query.
const decoder = new TextDecoder();

/** Binds `params` to `stmt`. Throws InvalidArgumentError or TooBigError before the engine sees a bad value. */
export function bindAll(engine: Engine, handle: number, stmt: number, params: Params): void {
  const { sqlite3, module } = engine;
  const count = sqlite3.bind_parameter_count(stmt);
  const values: SqlValue[] = [];
  for (let i = 1; i <= count; i++) values.push(valueFor(sqlite3, stmt, params, i));

  // Text and blobs: encode, check against SQLite's limit, then allocate them
  // all before copying any, so a failure costs no memory and touches nothing.
  const limit = module._sqlite3_limit(handle, SQLITE_LIMIT_LENGTH, -1) as number;
  const big: { index: number; bytes: Uint8Array; text: boolean; ptr: number }[] = [];
  values.forEach((value, k) => {
    if (typeof value !== 'string' && !(value instanceof Uint8Array)) return;
    const bytes = typeof value === 'string' ? encodeText(value, k + 1) : value;
    if (bytes.byteLength > limit) {
      throw new TooBigError(`SQL parameter ${k + 1} is ${bytes.byteLength} bytes, more than SQLite's limit of ${limit}`);
    }
    big.push({ index: k + 1, bytes, text: typeof value === 'string', ptr: 0 });
  });
  try {
    for (const b of big) {
      b.ptr = module._sqlite3_malloc(Math.max(1, b.bytes.byteLength)) as number;
      if (b.ptr === 0) {
        const total = big.reduce((n, x) => n + x.bytes.byteLength, 0);
        throw new TooBigError(`SQL parameter ${b.index} (${b.bytes.byteLength} bytes) does not fit in the engine's memory (at most 2 GiB; this statement's values total ${total} bytes)`);
      }
    }
    const heap: Uint8Array = module.HEAPU8; // read after every allocation: growing memory replaces the buffer
    for (const b of big) heap.set(b.bytes, b.ptr);

    const free = module._getSqliteFree() as number;
    let next = 0;
    values.forEach((value, k) => {
      const i = k + 1;
      if (big[next]?.index === i) {
        const b = big[next++]!;
        const ptr = b.ptr;
        b.ptr = 0; // SQLite owns it now: it frees it with `free`, even when the bind fails
        const bind = b.text ? module._sqlite3_bind_text : module._sqlite3_bind_blob;
        const rc = bind(stmt, i, ptr, b.bytes.byteLength, free) as number;
        if (rc !== SQLite.SQLITE_OK) throw toCipherkeepError({ code: rc, message: `cannot bind parameter ${i} (${rc})` }, 'statement failed');
      } else if (typeof value === 'number' && Number.isSafeInteger(value) && (value | 0) !== value) {
        // Integers beyond 32 bits must bind as int64, not double (wa-sqlite's default).
        sqlite3.bind_int64(stmt, i, BigInt(value));
      } else {
        sqlite3.bind(stmt, i, typeof value === 'boolean' ? Number(value) : (value as number | bigint | null));
      }
    });
  } finally {
    for (const b of big) if (b.ptr !== 0) module._sqlite3_free(b.ptr);
  }
}

function valueFor(sqlite3: SQLiteAPI, stmt: number, params: Params, i: number): SqlValue {
  let value: unknown;
  if (Array.isArray(params)) {
    value = (params as readonly SqlValue[])[i - 1];
  } else {
    const name = sqlite3.bind_parameter_name(stmt, i);
    value = (params as Record<string, SqlValue>)[name.slice(1)] ?? (params as Record<string, SqlValue>)[name];
  }
  if (value === undefined) throw new InvalidArgumentError(`no value for SQL parameter ${i}`);
  const ok = value === null || value instanceof Uint8Array || ['number', 'bigint', 'string', 'boolean'].includes(typeof value);
  if (!ok) {
    // wa-sqlite would bind it as NULL with a console warning: silent data loss.
    throw new InvalidArgumentError(`SQL parameter ${i} is a ${typeof value === 'object' ? (value as object).constructor?.name ?? 'object' : typeof value}; pass a number, bigint, string, Uint8Array, boolean or null`);
  }
  return value as SqlValue;
}

/**
 * UTF-8 of a string parameter. A lone surrogate (half of a UTF-16 pair, e.g.
 * from cutting an emoji in two) has no UTF-8 form: the encoder would store
 * U+FFFD in its place (as native SQLCipher does), changing the data without
 * a word, so it is refused instead.
 */
function encodeText(value: string, i: number): Uint8Array {
  const wellFormed = (value as { isWellFormed?: () => boolean }).isWellFormed?.() ?? !/\p{Cs}/u.test(value);
  if (!wellFormed) {
    const at = value.search(/\p{Cs}/u);
    throw new InvalidArgumentError(
      `SQL parameter ${i} is not well-formed Unicode (a lone surrogate at index ${at}) and cannot be stored as UTF-8 text; ` +
        'fix the string (String.prototype.toWellFormed replaces it with U+FFFD) or store the bytes as a Uint8Array',
    );
  }
  return encoder.encode(value);
}

/** The values of the current row, text read by its byte length (a NUL inside is kept). */
export function readRow(engine: Engine, stmt: number): SqlValue[] {
  const { sqlite3, module } = engine;
  const n = sqlite3.data_count(stmt);
  const row: SqlValue[] = [];
  for (let i = 0; i < n; i++) {
    const type = sqlite3.column_type(stmt, i);
    if (type === SQLite.SQLITE_TEXT || type === SQLite.SQLITE_BLOB) {
      // Pointer first, then the byte count of that representation (SQLite's documented order).
      const ptr = (type === SQLite.SQLITE_TEXT ? module._sqlite3_column_text(stmt, i) : module._sqlite3_column_blob(stmt, i)) as number;
      const bytes = module._sqlite3_column_bytes(stmt, i) as number;
      if (ptr === 0 && bytes > 0) throw new TooBigError(`column ${i} (${bytes} bytes) does not fit in the engine's memory`);
      const view = (module.HEAPU8 as Uint8Array).subarray(ptr, ptr + bytes);
      row.push(type === SQLite.SQLITE_TEXT ? decodeText(view, i) : view.slice());
    } else {
      row.push(sqlite3.column(stmt, i) as SqlValue);
    }
  }
  return row;
}

function decodeText(bytes: Uint8Array, column: number): string {
  try {
    return decoder.decode(bytes);
  } catch (e) {
    // V8 strings stop at 2^29 - 24 characters.
    throw new TooBigError(`column ${column} (${bytes.byteLength} bytes of text) is longer than a JavaScript string can be`, { cause: e });
  }
}

/**
 * Checks that SQL text fits before wa-sqlite copies it into the engine (its
 * allocation there is unchecked too). Short SQL always fits.
 */
export function checkSqlFits(engine: Engine, handle: number, sql: string): void {
  if (sql.length < 1 << 16) return;
  const { module } = engine;
  const bytes = encoder.encode(sql).byteLength;
  const limit = module._sqlite3_limit(handle, SQLITE_LIMIT_SQL_LENGTH, -1) as number;
  if (bytes > limit) throw new TooBigError(`the SQL text is ${bytes} bytes, more than SQLite's limit of ${limit}`);
  // The same size wa-sqlite asks for next, freed at once: nothing runs in between.
  const probe = module._sqlite3_malloc(bytes + 12) as number;
  if (probe === 0) throw new TooBigError(`the SQL text (${bytes} bytes) does not fit in the engine's memory`);
  module._sqlite3_free(probe);
}
