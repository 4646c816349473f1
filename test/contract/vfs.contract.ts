/**
 * One behaviour suite for every cipherkeep VFS: run by node:test against
 * memory and the Node/Deno filesystem (test/vfs.test.ts), and by Playwright
 * against OPFS in Chromium (test/browser/vfs-contract.spec.ts), where each
 * connection lives in a worker and is driven from here. A host supplies how
 * to open a database by name and how to read a file's raw bytes.
 */
import * as nodeTest from '../timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BusyError, type Database, type OpenOptions } from '../../src/index.ts';
import { nativeQuery, passphraseKey } from '../helpers.ts';

/** What the suite uses of a Database (a Database, or a proxy to one in a browser worker). */
export type Connection = Pick<Database, 'exec' | 'query' | 'run' | 'close' | 'transaction'>;

export interface VfsHost {
  open(name: string, options: OpenOptions): Promise<Connection>;
  /** Raw bytes of a file, or null when it does not exist (to SQLite). */
  readFile(name: string): Uint8Array | null | Promise<Uint8Array | null>;
}

/** The test runner's two functions: node:test's, or Playwright's test.describe and test. */
export interface Runner {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: () => Promise<void>): void;
}

let counter = 0;
const unique = (stem: string) => `${stem}-${process.pid}-${++counter}.db`;

/** Opens the bytes of `name` in native SQLCipher (through a temp file) and returns a query's rows. */
async function nativeRows(host: VfsHost, name: string, password: string, sql: string, extra: string[] = []): Promise<unknown[]> {
  const bytes = await host.readFile(name);
  assert.ok(bytes, `${name} exists`);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cipherkeep-native-')), 'copy.db');
  try {
    fs.writeFileSync(file, bytes);
    return nativeQuery(file, [...passphraseKey(password), ...extra], sql);
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}

export function vfsContract(label: string, host: VfsHost, { describe, it }: Runner = nodeTest): void {
  describe(`VFS contract: ${label}`, () => {
    it('creates, writes, and reads back after reopening', async () => {
      const name = unique('roundtrip');
      const db = await host.open(name, { password: 'pw', create: true });
      await db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
      await db.run('INSERT INTO t (v) VALUES (?), (?)', ['one', 'two']);
      await db.close();
      const again = await host.open(name, { password: 'pw' });
      assert.deepEqual(await again.query('SELECT v FROM t ORDER BY id'), [{ v: 'one' }, { v: 'two' }]);
      await again.close();
    });

    it('gives 20 new databases 20 distinct random salts, each opening in native SQLCipher', async () => {
      const salts = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const name = unique('salt');
        const db = await host.open(name, { password: `pw${i}`, create: true, cipher: { kdfIterations: 1000 } });
        await db.exec(`CREATE TABLE t (v); INSERT INTO t VALUES (${i})`);
        await db.close();
        const salt = Buffer.from((await host.readFile(name))!.subarray(0, 16)).toString('hex');
        assert.notEqual(salt, '00'.repeat(16), 'salt is not all zeros');
        salts.add(salt);
        const rows = await nativeRows(host, name, `pw${i}`, 'SELECT v FROM t', ['kdf_iter = 1000']);
        assert.deepEqual(rows, [{ v: i }]);
      }
      assert.equal(salts.size, 20);
    });

    it('DELETE journal: commits leave no journal and the file is whole pages', async () => {
      const name = unique('journal');
      const db = await host.open(name, { password: 'pw', create: true });
      await db.transaction(async (tx) => {
        await tx.exec('CREATE TABLE t (v)');
        for (let i = 0; i < 200; i++) await tx.run('INSERT INTO t VALUES (?)', ['x'.repeat(100)]);
      });
      assert.equal(await host.readFile(`${name}-journal`), null);
      assert.equal((await host.readFile(name))!.length % 4096, 0);
      await db.close();
    });

    it('truncates: VACUUM after deleting rows shrinks the file', async () => {
      const name = unique('vacuum');
      const db = await host.open(name, { password: 'pw', create: true });
      await db.exec("CREATE TABLE t (v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 2000) INSERT INTO t SELECT randomblob(200) FROM c");
      const before = (await host.readFile(name))!.length;
      await db.exec('DELETE FROM t; VACUUM');
      const after = (await host.readFile(name))!.length;
      assert.ok(after < before / 4, `file shrank from ${before} to ${after}`);
      await db.close();
    });

    it('WAL: a reader keeps its snapshot while another connection commits', async () => {
      const name = unique('wal');
      const writer = await host.open(name, { password: 'pw', create: true, journalMode: 'wal' });
      await writer.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)');
      const reader = await host.open(name, { password: 'pw' });
      await reader.exec('BEGIN');
      assert.deepEqual(await reader.query('SELECT count(*) AS n FROM t'), [{ n: 1 }]);
      await writer.run('INSERT INTO t VALUES (2)');
      assert.deepEqual(await reader.query('SELECT count(*) AS n FROM t'), [{ n: 1 }], 'snapshot holds');
      await reader.exec('COMMIT');
      assert.deepEqual(await reader.query('SELECT count(*) AS n FROM t'), [{ n: 2 }]);
      assert.ok(await host.readFile(`${name}-wal`), 'WAL file exists while connections are open');
      await reader.close();
      await writer.close();
      assert.equal(await host.readFile(`${name}-wal`), null, 'last close checkpoints and removes the WAL');
      assert.deepEqual(await nativeRows(host, name, 'pw', 'SELECT count(*) AS n FROM t'), [{ n: 2 }]);
    });

    it('a second writer waits for the first, then gets BusyError past its timeout', async () => {
      const name = unique('busy');
      const a = await host.open(name, { password: 'pw', create: true });
      await a.exec('CREATE TABLE t (v)');
      const b = await host.open(name, { password: 'pw', busyTimeoutMs: 100 });
      await a.exec('BEGIN IMMEDIATE');
      await assert.rejects(b.run('INSERT INTO t VALUES (1)'), BusyError);
      // Released within b's timeout: b's write goes through after waiting.
      const write = b.run('INSERT INTO t VALUES (2)');
      setTimeout(() => void a.exec('COMMIT'), 30);
      assert.equal((await write).changes, 1);
      assert.deepEqual(await a.query('SELECT v FROM t'), [{ v: 2 }]);
      await a.close();
      await b.close();
    });

    it('a writer in DELETE mode waits for readers to finish before committing', async () => {
      const name = unique('readers');
      const a = await host.open(name, { password: 'pw', create: true });
      await a.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)');
      const b = await host.open(name, { password: 'pw' });
      await b.exec('BEGIN');
      await b.query('SELECT * FROM t'); // holds SHARED
      const write = a.run('INSERT INTO t VALUES (2)');
      setTimeout(() => void b.exec('COMMIT'), 30);
      assert.equal((await write).changes, 1);
      assert.deepEqual(await b.query('SELECT count(*) AS n FROM t'), [{ n: 2 }]);
      await a.close();
      await b.close();
    });
  });
}
