/**
 * The README's errors table, row by row: each error is produced through the
 * public API by a real condition, is a CipherkeepError of the class the row
 * names, and carries the row's code. The table is read from the README, so
 * a row without a way to produce it here (or a class missing from the
 * table) fails this test.
 */
import { after } from 'node:test';
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as api from '../src/index.ts';
import { CipherkeepError, KeyedMutex, MemoryVFS, createEngine, openDatabaseWith, type PathInfo } from '../src/index.ts';
import { nodeEngine, openDatabase } from '../src/node.ts';
import { MIN_KDF_ITERATIONS } from '../src/engine/cipher.ts';
import { cli, json } from './cli-run.ts';
import { tempDir, withNative } from './helpers.ts';
import { BackupService, NodeFileStore } from '../src/node.ts';
import { S3Target, contentMd5 } from '../src/targets/s3/index.ts';
import { swift, useSwift } from './swift.ts';
import { backupFolder } from '../src/browser/backup-folder.ts';

const store = await useSwift();
if (store.started) after(() => swift('stop'));
/** An S3 target on the test store (null where the store may be skipped: outside CI, Swift not installed). */
const s3 = (extra: Record<string, unknown> = {}) => store.env && new S3Target({
  bucket: store.env.bucket, endpoint: store.env.endpoint, region: store.env.region,
  credentials: { accessKeyId: store.env.accessKeyId, secretAccessKey: store.env.secretAccessKey },
  prefix: `errors-${Date.now()}`, retry: { attempts: 2, baseDelayMs: 10 }, ...extra,
});
const backups = (db: string, extra: Record<string, unknown> = {}) =>
  new BackupService({ databasePath: db, backupDir: path.join(dir, `b-${++n}`), password: 'pw', keyProfile: { ...api.sqlcipher4, cipher: FAST }, ...extra });

const ROOT = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
const FAST = { kdfIterations: 1000 };
const dir = tempDir('errors');
let n = 0;
const fresh = () => path.join(dir, `db-${++n}.db`);

/** Rows of the README's errors table: class name, code. */
function readmeRows(): { name: string; code: string }[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Errors'), readme.indexOf('\n## ', readme.indexOf('### Errors')));
  return [...section.matchAll(/^\| `(\w+)` \| `([A-Z_]+)` \|/gm)].map((m) => ({ name: m[1]!, code: m[2]! }));
}

async function made(): Promise<string> {
  const file = fresh();
  const db = await openDatabase(file, { password: 'pw', create: true, cipher: FAST });
  await db.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)');
  await db.close();
  return file;
}

const caught = (p: Promise<unknown>) => p.then(() => new Error('expected a failure, got success'), (e: unknown) => e);

/** A host adapter with a bug: what it throws is not ours to name. */
class BuggyVFS extends MemoryVFS {
  override info(_path: string): PathInfo {
    throw new TypeError('a bug in this host adapter');
  }
}

/** Each row's error, from a real condition. A subprocess reports `{ code }` instead of an instance. */
const SCENARIOS: Record<string, () => Promise<unknown[]>> = {
  WrongKeyError: async () => [await caught(openDatabase(await made(), { password: 'wrong', cipher: FAST }))],
  NotEncryptedError: async () => {
    const file = fresh();
    withNative(file, [], (db) => db.exec('CREATE TABLE t (v)'));
    return [await caught(openDatabase(file, { password: 'pw' }))];
  },
  CorruptDatabaseError: async () => {
    const file = fresh();
    fs.writeFileSync(file, '');
    return [await caught(openDatabase(file, { password: 'pw' }))];
  },
  DatabaseNotFoundError: async () => [await caught(openDatabase(fresh(), { password: 'pw' }))],
  MissingDirectoryError: async () => {
    const aFile = await made();
    return [
      await caught(openDatabase(path.join(dir, 'no-such-dir', 'x.db'), { password: 'pw', create: true })),
      await caught(openDatabase(path.join(aFile, 'x.db'), { password: 'pw', create: true })), // a file where a directory should be
    ];
  },
  NotAFileError: async () => {
    const sub = path.join(dir, 'a-directory');
    fs.mkdirSync(sub, { recursive: true });
    return [await caught(openDatabase(sub, { password: 'pw' })), await caught(openDatabase(sub, { password: 'pw', create: true }))];
  },
  PermissionDeniedError: async () => {
    const file = await made();
    fs.chmodSync(file, 0o600);
    if (process.getuid?.() !== 0) {
      fs.chmodSync(file, 0o000);
      return [await caught(openDatabase(file, { password: 'pw', cipher: FAST }))];
    }
    // Root reads every file: ask as the unprivileged user `nobody` instead, in a child process.
    fs.chmodSync(dir, 0o755);
    const node = 'Deno' in globalThis ? 'node' : process.execPath;
    const script = `const { openDatabase } = await import(${JSON.stringify(path.join(ROOT, 'src/node.ts'))});
      await openDatabase(${JSON.stringify(file)}, { password: 'pw' }).then(() => console.log('{}'), (e) => console.log(JSON.stringify({ name: e.name, code: e.code })));`;
    const child = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', node, '--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(child.status, 0, child.stderr);
    const reported = JSON.parse(child.stdout.trim());
    assert.equal(reported.name, 'PermissionDeniedError', child.stdout);
    return [reported];
  },
  FileSystemError: async () => {
    const file = await made();
    const db = await openDatabase(file, { password: 'pw', cipher: FAST });
    fs.mkdirSync(`${file}-journal`); // SQLite cannot create its rollback journal
    const e = await caught(db.run('INSERT INTO t VALUES (2)'));
    await db.close();
    return [e];
  },
  BusyError: async () => {
    const file = await made();
    const holder = await openDatabase(file, { password: 'pw', cipher: FAST });
    const waiter = await openDatabase(file, { password: 'pw', cipher: FAST, busyTimeoutMs: 50 });
    await holder.exec('BEGIN IMMEDIATE');
    const e = await caught(waiter.run('INSERT INTO t VALUES (2)'));
    await holder.exec('COMMIT');
    await Promise.all([holder.close(), waiter.close()]);
    return [e];
  },
  LockTimeoutError: async () => {
    const mutex = new KeyedMutex();
    const release = await mutex.acquire('the database');
    const e = await caught(mutex.acquire('the database', 20));
    release();
    return [e];
  },
  StorageFullError: async () => {
    const db = await openDatabase(fresh(), { password: 'pw', create: true, cipher: FAST });
    await db.exec('CREATE TABLE t (v); PRAGMA max_page_count = 3');
    const e = await caught(db.run('INSERT INTO t VALUES (?)', [new Uint8Array(20_000)]));
    await db.close();
    return [e];
  },
  TooBigError: async () => {
    const db = await openDatabase(fresh(), { password: 'pw', create: true, cipher: FAST });
    const e = await caught(db.query('SELECT length(?)', [new Uint8Array(1_000_000_001)]));
    await db.close();
    return [e];
  },
  DeadlockError: async () => {
    const db = await openDatabase(await made(), { password: 'pw', cipher: FAST });
    const e = await caught(db.transaction(async () => void (await db.run('INSERT INTO t VALUES (2)'))));
    await db.close();
    return [e];
  },
  ClosedError: async () => {
    const db = await openDatabase(await made(), { password: 'pw', cipher: FAST });
    await db.close();
    return [await caught(db.query('SELECT 1'))];
  },
  InvalidArgumentError: async () => [
    await caught(openDatabase(fresh(), { password: '', create: true })),
    await caught(openDatabase(fresh(), { password: 'pw', create: true, cipher: { kdfIterations: 1 } })),
    await caught(openDatabase('bad\0name.db', { password: 'pw', create: true })),
  ],
  AlreadyExistsError: async () => {
    const r = await cli(['create', '--db', await made(), '--json'], { env: { CIPHERKEEP_PASSWORD: 'pw' } });
    assert.equal(r.code, 1, r.stderr);
    return [{ code: json(r).code }];
  },
  EngineLoadError: async () => [await caught(createEngine(new Uint8Array([0, 97, 115, 109])))],
  SqliteError: async () => {
    const db = await openDatabase(fresh(), { password: 'pw', create: true, cipher: FAST });
    const e = await caught(db.query('SELEKT 1'));
    await db.close();
    return [e];
  },
  InUseError: async () => {
    const file = await made();
    const open = await openDatabase(file, { password: 'pw', cipher: FAST });
    const r = await backups(file).changePassword({ password: 'pw2' });
    await open.close();
    return [{ code: r.errorCode }];
  },
  LockLostError: async () => {
    // Another process took the lock over (as after this one was paused past the stale window): generation N+1 appears.
    const lockPath = path.join(dir, `lost-${++n}`);
    const lock = await new NodeFileStore().lock(lockPath, 1000);
    fs.writeFileSync(path.join(lockPath, String(Number(lock.token) + 1)), '{}');
    const e = await caught(lock.check());
    await lock.release();
    return [e];
  },
  UnsafeDirectoryError: async () => {
    const open = path.join(dir, `open-${++n}`);
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o777);
    return [{ code: (await backups(await made(), { backupDir: open }).createBackup()).errorCode }];
  },
  OtherDatabaseError: async () => {
    const theirs = await backups(await made()).createBackup();
    return [{ code: (await backups(await made()).restoreBackup(theirs.backupPath!)).errorCode }];
  },
  AbortedError: async () => {
    const r = await backups(await made()).importBackup((async function* () { yield new Uint8Array(1); })(), { signal: AbortSignal.abort() });
    return [{ code: r.errorCode }];
  },
  TargetUnreachableError: async () => [await caught(new S3Target({
    bucket: 'b', endpoint: 'http://127.0.0.1:9', region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 's' }, retry: { attempts: 1, baseDelayMs: 1 },
  }).stat('x'))],
  TargetDeniedError: async () => {
    const t = s3({ credentials: { accessKeyId: store.env?.accessKeyId ?? '', secretAccessKey: 'not the secret' } });
    return t ? [await caught(t.stat('x'))] : [];
  },
  TargetNotFoundError: async () => {
    const t = s3({ bucket: 'no-such-bucket-here' });
    return t ? [await caught(t.read('x', 0, 1))] : [];
  },
  TargetRejectedError: async () => {
    const t = s3();
    if (!t) return [];
    const wrongMd5 = (await contentMd5(new Uint8Array([1, 2, 3]))).header;
    return [await caught(t.client.putObject(`${t.prefix}bad.db`, new Uint8Array([1, 2, 4]), wrongMd5))];
  },
  // Node, like Firefox and Safari, has no showDirectoryPicker.
  UnsupportedError: async () => [await caught(backupFolder('errors').pick())],
  PlaintextHeaderError: async () => {
    const file = fresh();
    withNative(file, ["key = 'pw'", 'cipher_plaintext_header_size = 32', `cipher_salt = "x'${'5a'.repeat(16)}'"`], (db) => db.exec('CREATE TABLE t (v)'));
    return [await caught(openDatabase(file, { password: 'pw' }))];
  },
  MissingModuleError: async () => {
    const file = fresh();
    const dump = fs.readFileSync(path.join(ROOT, 'test/fixtures/fts-rtree.sql'), 'utf8').replace(/^(BEGIN TRANSACTION;|COMMIT;)$/gm, '');
    withNative(file, ["key = 'pw'"], (db) => db.exec(dump));
    const db = await openDatabase(file, { password: 'pw' });
    try {
      return [await caught(db.query("SELECT * FROM notes WHERE notes MATCH 'fox'")), await caught(db.query('SELECT * FROM boxes'))];
    } finally {
      await db.close();
    }
  },
  InternalError: async () => {
    const { engine } = await nodeEngine();
    const name = engine.registerVFS(new BuggyVFS('cipherkeep-buggy', engine.module));
    return [await caught(openDatabaseWith(engine, name, '/x.db', { password: 'pw', create: true }))];
  },
};

describe('errors', { timeout: 180_000 }, () => {
  it("every row of the README's errors table, produced through the public API", async () => {
    const rows = readmeRows();
    assert.ok(rows.length >= 15, `read ${rows.length} rows`);
    for (const { name, code } of rows) {
      const Class = (api as Record<string, unknown>)[name] as (new (m: string) => CipherkeepError) | undefined;
      assert.ok(Class && Class.prototype instanceof CipherkeepError, `${name} is an exported CipherkeepError`);
      assert.equal(new Class('x').code, code, `${name}.code`);
      const scenario = SCENARIOS[name];
      assert.ok(scenario, `README row ${name} has no scenario in test/errors.test.ts`);
      for (const e of await scenario()) {
        if (e instanceof Error) {
          assert.ok(e instanceof Class, `${name}: got ${(e as Error).name}: ${(e as Error).message}`);
          assert.equal((e as CipherkeepError).code, code);
          assert.doesNotMatch(e.message, /x'|pw'/, 'no key material in the message');
        } else {
          assert.equal((e as { code: string }).code, code, `${name} from a subprocess`);
        }
      }
    }
  });

  it('every exported error class has its row', () => {
    const documented = new Set(readmeRows().map((r) => r.name));
    const exported = Object.entries(api)
      .filter(([, v]) => typeof v === 'function' && v.prototype instanceof CipherkeepError)
      .map(([k]) => k);
    for (const name of exported) assert.ok(documented.has(name), `${name} is missing from the README's errors table`);
  });

  it(`kdfIterations below ${MIN_KDF_ITERATIONS} needs allowWeakKdf, which names the risk`, async () => {
    for (const kdfIterations of [1, 10, MIN_KDF_ITERATIONS - 1]) {
      const e = await caught(openDatabase(fresh(), { password: 'pw', create: true, cipher: { kdfIterations } }));
      assert.ok(e instanceof api.InvalidArgumentError, String(e));
      assert.match((e as Error).message, new RegExp(`kdfIterations ${kdfIterations} is below the minimum of 1000: .*allowWeakKdf: true`));
    }
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith(`db-${n}`)), [], 'nothing created');
    const file = fresh();
    const weak = await openDatabase(file, { password: 'pw', create: true, cipher: { kdfIterations: 1, allowWeakKdf: true } });
    await weak.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)');
    await weak.close();
    assert.deepEqual(withNative(file, ["key = 'pw'", 'kdf_iter = 1'], (db) => db.prepare('SELECT v FROM t').all()), [{ v: 1 }]);
    await caught(openDatabase(file, { password: 'pw', cipher: { kdfIterations: 1 } })).then((e) => assert.ok(e instanceof api.InvalidArgumentError));
    const floor = await openDatabase(fresh(), { password: 'pw', create: true, cipher: { kdfIterations: MIN_KDF_ITERATIONS } });
    await floor.close();
  });
});
