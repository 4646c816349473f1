/** Test helpers shared by the Node and Deno suites. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { createHash } from 'node:crypto';
import NativeDatabase from '@signalapp/sqlcipher';
import { openDatabase } from '../src/node.ts';
import { TargetUnreachableError } from '../src/engine/errors.ts';
import type { BackupTarget } from '../src/targets/target.ts';

/** `[command, args]` that run test/fixtures/`name` with `args` under this suite's runtime (Node with tsx, or Deno). */
export function fixtureCommand(name: string, args: string[] = []): [string, string[]] {
  const here = import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname);
  return [process.execPath, [...('Deno' in globalThis ? ['run', '-A'] : ['--import', 'tsx']), path.join(here, 'fixtures', name), ...args]];
}

/** A fresh directory, removed when the test file ends. */
export function tempDir(label = 'test'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cipherkeep-${label}-`));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Opens a file in real SQLCipher 4 (native), runs `fn`, closes. `keyPragma` is e.g. `key = 'pw'`. */
export function withNative<T>(file: string, keyPragmas: string[], fn: (db: NativeDatabase) => T): T {
  const db = new NativeDatabase(file);
  try {
    for (const p of keyPragmas) db.pragma(p);
    return fn(db);
  } finally {
    db.close();
  }
}

/** Native rows of a query, for a file keyed by passphrase or raw key. */
export function nativeQuery(file: string, keyPragmas: string[], sql: string): unknown[] {
  return withNative(file, keyPragmas, (db) => db.prepare(sql).all());
}

export const passphraseKey = (pw: string) => [`key = '${pw.replace(/'/g, "''")}'`];
export const rawKey = (hex: string) => [`key = "x'${hex}'"`];

/** A fast key derivation, for tests that open many databases. */
const FAST_KDF = { kdfIterations: 1000 };

/** A database at `file` holding `rows` numbered rows in t(id, v), keyed with a fast KDF. */
export async function makeRowsDb(file: string, password = 'pw', rows = 20_000): Promise<void> {
  const db = await openDatabase(file, { password, create: true, cipher: FAST_KDF });
  await db.exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < ${rows}) INSERT INTO t SELECT i, 'row ' || i FROM c`);
  await db.close();
}

/** Runs `sql` on a database made by makeRowsDb. */
export async function execOn(file: string, password: string, sql: string): Promise<void> {
  const db = await openDatabase(file, { password, cipher: FAST_KDF });
  try {
    await db.exec(sql);
  } finally {
    await db.close();
  }
}

/** `inner`, unreachable (TargetUnreachableError on every call) while `isDown()`. */
export function switchable(inner: BackupTarget, isDown: () => boolean): BackupTarget {
  const gate = <T>(fn: () => Promise<T>) => (isDown() ? Promise.reject(new TargetUnreachableError(`${inner.id}: down`)) : fn());
  return {
    id: inner.id, list: (p) => gate(() => inner.list(p)), stat: (n) => gate(() => inner.stat(n)), read: (n, o, l) => gate(() => inner.read(n, o, l)),
    put: (...a) => gate(() => inner.put(...a)), remove: (n) => gate(() => inner.remove(n)),
  };
}
