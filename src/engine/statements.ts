/**
 * Stepping SQL on one connection handle: prepare each statement, bind,
 * step through SQLite's busy answers, read rows, finalize on every path.
 */
import * as SQLite from '@journeyapps/wa-sqlite';
import { codeOf, toCipherkeepError } from './error-map.ts';
import { bindAll, checkSqlFits, readRow, type Params, type SqlValue } from './values.ts';
import type { Engine } from './engine.ts';

export type Row = Record<string, SqlValue>;
export interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

/** Steps every statement in `sql`; statements are finalized by the iterator on every path. */
export async function eachRow(
  engine: Engine, handle: number, sql: string, params: Params | undefined, busyTimeoutMs: number, onRow: (row: Row) => void,
): Promise<void> {
  const { sqlite3 } = engine;
  try {
    checkSqlFits(engine, handle, sql);
    for await (const stmt of sqlite3.statements(handle, sql)) {
      if (params !== undefined) bindAll(engine, handle, stmt, params);
      const deadline = Date.now() + busyTimeoutMs;
      let columns: string[] | undefined;
      let gotRow = false;
      // Short, capped waits: a connection that polls slowly loses every race
      // against busy writers of the same engine (measured: seconds per backup).
      for (let delay = 1; ; delay = Math.min(delay * 2, 4)) {
        try {
          while ((await sqlite3.step(stmt)) === SQLite.SQLITE_ROW) {
            gotRow = true;
            columns ??= sqlite3.column_names(stmt);
            const values = readRow(engine, stmt);
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

/** The change count and last rowid of the statement just run on `handle`. */
export function lastChange(engine: Engine, handle: number): RunResult {
  const { module } = engine;
  // wa-sqlite's last_insert_id drops the high 32 bits; read both halves.
  const lo = module._sqlite3_last_insert_rowid(handle) >>> 0;
  const hi = module.getTempRet0() | 0;
  const rowid = hi === 0 ? lo : BigInt(hi) * 2n ** 32n + BigInt(lo);
  return {
    changes: engine.sqlite3.changes(handle),
    lastInsertRowid: typeof rowid === 'bigint' && rowid <= BigInt(Number.MAX_SAFE_INTEGER) && rowid >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(rowid) : rowid,
  };
}
