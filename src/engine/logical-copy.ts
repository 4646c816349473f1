/**
 * A whole database copied table by table into an empty one, the way
 * SQLCipher's own sqlcipher_export() does it. It is how a SQLCipher 3 file
 * changes its key: sqlite3mc cannot rekey a legacy-format file in place, but
 * it can write a fresh one under the new key (see Database.copyFrom).
 *
 * Order, as in sqlcipher_export: tables with pages (every one but
 * sqlite_sequence, FTS shadow tables included), their rows, indexes,
 * sqlite_sequence, then the schema rows without pages (views, triggers,
 * virtual tables) written straight into sqlite_master, so no trigger fires
 * and no virtual table is built twice; last the header values SQLite keeps
 * for the application. Rowids are copied too (VACUUM keeps them; a rowid
 * table without INTEGER PRIMARY KEY would otherwise renumber its rows).
 */
import type { Row } from './statements.ts';
import type { Params } from './values.ts';
import type { KeyMaterial } from './cipher.ts';
import { CorruptDatabaseError, DatabaseNotFoundError, InvalidArgumentError } from './errors.ts';
import { toCipherkeepError } from './error-map.ts';
import type { HostVFS } from '../vfs/host-vfs.ts';
import { toHex } from './bytes.ts';

/** How the copy reaches the connection whose main database is the (empty) target. */
export interface CopyRunner {
  run(sql: string): Promise<void>;
  query<T extends Row>(sql: string, params?: Params): Promise<T[]>;
}

/** The schema name the source is attached as. */
const SOURCE = 'ck_source';

/** Database.copyFrom: attaches the file at `sourcePath` with `sourceKey` (the target's cipher settings) and copies it into `target`. */
export async function copyFile(db: CopyRunner, host: HostVFS<unknown>, target: string, sourcePath: string, sourceKey: KeyMaterial): Promise<void> {
  const source = host.resolve(sourcePath);
  // ATTACH would create a missing file (the target's connection may have been opened to create) and copy nothing.
  if (!host.info(source).size) throw new DatabaseNotFoundError(`no database to copy at ${source}`);
  const [{ n } = { n: 0 }] = await db.query<{ n: number }>('SELECT count(*) AS n FROM main.sqlite_schema');
  if (n > 0) throw new InvalidArgumentError(`copyFrom fills a new, empty database; ${target} has a schema`);
  await host.prepare(source, false);
  try {
    // Bound, never in the SQL text: the key must not reach an error message.
    const key = sourceKey.key !== undefined ? `x'${toHex(sourceKey.key)}'` : sourceKey.password!;
    await db.query(`ATTACH ? AS ${SOURCE} KEY ?`, [source, key]);
    try {
      await copyInto(db, SOURCE);
    } finally {
      await db.run(`DETACH ${SOURCE}`);
    }
  } catch (e) {
    throw toCipherkeepError(e, `cannot copy ${source}`);
  } finally {
    await host.release(source);
  }
}

/** Header values kept for the application (sqlcipher_export copies the same ones, and schema_version past the source's). */
const KEPT_HEADER = ['user_version', 'application_id'] as const;

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

interface SchemaRow extends Row {
  type: string;
  name: string;
  sql: string | null;
  rootpage: number;
}

/**
 * Copies everything in the attached schema `src` into `main` (new and empty),
 * in one transaction; throws if a copied table's row count differs.
 */
export async function copyInto(db: CopyRunner, src: string): Promise<void> {
  if (!/^[a-z_]+$/.test(src)) throw new Error(`not a schema name: ${src}`);
  const schema = await db.query<SchemaRow>(`SELECT type, name, sql, rootpage FROM ${src}.sqlite_master WHERE sql IS NOT NULL ORDER BY rowid`);
  const tables = schema.filter((r) => r.type === 'table' && r.rootpage > 0 && r.name !== 'sqlite_sequence');
  // auto_vacuum can only be chosen before the first table; FK checks would reject rows copied parent-last
  // (this connection only makes the copy, so nothing needs them back on).
  const [vacuum] = await db.query<{ auto_vacuum: number }>(`PRAGMA ${src}.auto_vacuum`);
  await db.run(`PRAGMA main.auto_vacuum = ${Number(vacuum?.auto_vacuum ?? 0)}`);
  await db.run('PRAGMA foreign_keys = OFF');
  await db.run('BEGIN IMMEDIATE');
  try {
    // As in VACUUM: lets the schema take sqlite_stat1 and friends, and the rows without pages below.
    await db.run('PRAGMA writable_schema = ON');
    for (const t of tables) await db.run(t.sql!);
    for (const t of tables) await copyRows(db, src, t.name);
    for (const i of schema.filter((r) => r.type === 'index')) await db.run(i.sql!);
    if (schema.some((r) => r.name === 'sqlite_sequence')) {
      await db.run(`DELETE FROM main.sqlite_sequence; INSERT INTO main.sqlite_sequence SELECT * FROM ${src}.sqlite_sequence`);
    }
    await db.run(`INSERT INTO main.sqlite_master (type, name, tbl_name, rootpage, sql) SELECT type, name, tbl_name, 0, sql FROM ${src}.sqlite_master WHERE sql IS NOT NULL AND rootpage = 0 AND type IN ('table', 'view', 'trigger') ORDER BY rowid`);
    for (const name of KEPT_HEADER) {
      const [row] = await db.query<Row>(`PRAGMA ${src}.${name}`);
      await db.run(`PRAGMA main.${name} = ${Number(Object.values(row ?? {})[0] ?? 0)}`);
    }
    // A new schema_version makes every connection (this one too) reload the schema rows written above.
    const version = async (s: string) => Number(Object.values((await db.query<Row>(`PRAGMA ${s}.schema_version`))[0] ?? {})[0] ?? 0);
    await db.run(`PRAGMA main.schema_version = ${Math.max(await version(src), await version('main')) + 1}`);
    await db.run('PRAGMA writable_schema = OFF');
    await db.run('COMMIT');
  } catch (e) {
    await db.run('ROLLBACK').catch(() => {});
    await db.run('PRAGMA writable_schema = OFF').catch(() => {});
    throw e;
  }
  for (const t of tables) await sameCount(db, src, t.name);
}

/** Copies the rows of one table, rowids included, generated columns left to SQLite. */
async function copyRows(db: CopyRunner, src: string, table: string): Promise<void> {
  const columns = await db.query<{ name: string; hidden: number }>(`SELECT name, hidden FROM pragma_table_xinfo(${sqlString(table)}, ${sqlString(src)})`);
  // hidden 2 and 3 are generated columns: SQLite computes them, an INSERT may not name them.
  const names = columns.filter((c) => c.hidden === 0).map((c) => c.name);
  const rowid = await rowidAlias(db, src, table, columns.map((c) => c.name.toLowerCase()));
  const list = [...(rowid ? [rowid] : []), ...names.map(ident)].join(', ');
  await db.run(`INSERT INTO main.${ident(table)} (${list}) SELECT ${list} FROM ${src}.${ident(table)}`);
}

/** A name for the rowid that no column shadows, or null (WITHOUT ROWID, or every alias taken: SQLite's own VACUUM gives up there too). */
async function rowidAlias(db: CopyRunner, src: string, table: string, columns: string[]): Promise<string | null> {
  const [info] = await db.query<{ wr: number }>(`SELECT wr FROM pragma_table_list WHERE schema = ${sqlString(src)} AND name = ${sqlString(table)}`);
  if (info?.wr) return null;
  return ['rowid', '_rowid_', 'oid'].find((a) => !columns.includes(a)) ?? null;
}

async function sameCount(db: CopyRunner, src: string, table: string): Promise<void> {
  const count = async (s: string) => Number((await db.query<{ n: number }>(`SELECT count(*) AS n FROM ${s}.${ident(table)}`))[0]?.n);
  const [a, b] = [await count(src), await count('main')];
  if (a !== b) throw new CorruptDatabaseError(`copy of ${table} has ${b} rows, the source ${a}`);
}

const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;
