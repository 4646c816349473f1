/** Test helpers shared by the Node and Deno suites. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { createHash } from 'node:crypto';
import NativeDatabase from '@signalapp/sqlcipher';

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
