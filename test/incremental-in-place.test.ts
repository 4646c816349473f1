/**
 * Incremental backups of a database at rest read it in place (no snapshot
 * copy): a commit by another connection while it is read must not be
 * half-kept, and databases that need their WAL or journal applied, or whose
 * file holds more than its pages, are copied first as before.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BackupService, NodeFileStore, nodeBackupHost, sqlcipher4 } from '../src/node.ts';
import type { FileReader } from '../src/files/file-store.ts';
import { backupGeneration } from '../src/backup/page-store/index.ts';
import NativeDatabase from '@signalapp/sqlcipher';
import { nativeQuery, tempDir, withNative } from './helpers.ts';

const PRAGMAS = ["key = 'pw'", 'kdf_iter = 1000'];
const PROFILE = { ...sqlcipher4, cipher: { kdfIterations: 1000 } };
const ROWS = 3000;

/** ~12 MB in rollback-journal mode, written by native SQLCipher: one 3 KB row per page, every tag 'old'. */
function makeDb(file: string): void {
  withNative(file, PRAGMAS, (db) => {
    db.exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, tag TEXT, pad BLOB);
      WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < ${ROWS}) INSERT INTO t SELECT i, 'old', zeroblob(3000) FROM c`);
  });
}

/** What the store was asked to do: files created, kernel copies, and readers opened. */
class Recording extends NodeFileStore {
  readonly created: string[] = [];
  readonly copied: string[] = [];
  /** Paths opened with openReader: the live database's are reads in place. */
  readonly opened: string[] = [];
  /** Run once, just before the first read at or past 4 MiB (pass 1's second chunk). */
  beforeLateRead: (() => void) | null = null;

  override async create(p: string) {
    this.created.push(p);
    return super.create(p);
  }

  override async copyPrefix(from: string, to: string, length: number) {
    this.copied.push(to);
    return super.copyPrefix(from, to, length);
  }

  override async openReader(p: string): Promise<FileReader> {
    this.opened.push(p);
    const reader = await super.openReader(p);
    return {
      read: async (offset, into) => {
        if (offset >= 4 << 20 && this.beforeLateRead) {
          const write = this.beforeLateRead;
          this.beforeLateRead = null;
          write();
        }
        return reader.read(offset, into);
      },
      close: reader.close,
    };
  }
}

function setup(label: string) {
  const dir = tempDir(label);
  const db = path.join(dir, 'app.db');
  makeDb(db);
  const files = new Recording();
  const backups = path.join(dir, 'backups');
  const svc = new BackupService({ databasePath: db, password: 'pw', backupDir: backups, keyProfile: PROFILE, incremental: true, host: { ...nodeBackupHost(), files } });
  /** Files made in the backup directory itself: a staged snapshot copy (generations go in their store below it). */
  const staged = () => [...files.created, ...files.copied].filter((p) => path.dirname(p) === backups);
  /** Reads of the live database in place begun so far. */
  const inPlace = () => files.opened.filter((p) => p === db).length;
  return { db, files, svc, staged, inPlace };
}

async function restoredTags(svc: BackupService, db: string): Promise<unknown[]> {
  const r = await svc.restoreGeneration('latest');
  assert.equal(r.success, true, r.error);
  return nativeQuery(db, PRAGMAS, 'SELECT id, tag FROM t WHERE id IN (1, 3000) ORDER BY id');
}

describe('incremental backups of a database at rest: read in place', () => {
  it('no copy is made after the first generation; a commit while the file is read is noticed, and a copy is taken instead', async () => {
    const { db, files, svc, staged, inPlace } = setup('in-place');
    const first = await svc.createBackup();
    assert.equal(first.success, true, first.error);
    assert.equal(inPlace(), 0, 'the first generation (full) is made from a copy');
    const copies = staged().length;
    assert.equal((await svc.createBackup()).success, true);
    assert.equal(inPlace(), 1);
    assert.equal(staged().length, copies, 'the second was read in place, not copied');

    // Another connection commits after the first 4 MiB were read: the row on an early page (and page 1) as they were,
    // the row on a late page as it is now. Nothing else changed since generation 1, so only the late page would be
    // read again: only looking at the file once more, before the manifest commits, tells the two apart.
    files.beforeLateRead = () => withNative(db, PRAGMAS, (n) => n.exec("UPDATE t SET tag = 'new' WHERE id IN (1, 3000)"));
    const second = await svc.createBackup();
    assert.equal(second.success, true, second.error);
    assert.equal(second.generation, '3');
    assert.equal(inPlace(), 2);
    assert.equal(staged().length > copies, true, 'the read disturbed by the commit was thrown away, and a copy taken');
    assert.deepEqual(await restoredTags(svc, db), [{ id: 1, tag: 'new' }, { id: 3000, tag: 'new' }]);
  });

  it('a commit in exclusive locking mode (page 1 not rewritten) while the file is read is noticed too', async () => {
    const { db, files, svc, staged, inPlace } = setup('in-place-exclusive');
    const writer = new NativeDatabase(db);
    try {
      for (const p of PRAGMAS) writer.pragma(p);
      writer.pragma('locking_mode = EXCLUSIVE');
      // The first commit in exclusive mode bumps page 1's change counter; later ones write only the pages they change.
      writer.exec("UPDATE t SET tag = 'first' WHERE id = 2");
      assert.equal((await svc.createBackup()).success, true);
      const copies = staged().length;
      const page1 = fs.readFileSync(db).subarray(0, 512);
      files.beforeLateRead = () => writer.exec("UPDATE t SET tag = 'new' WHERE id IN (1, 3000)");
      const r = await svc.createBackup();
      assert.equal(r.success, true, r.error);
      assert.deepEqual(fs.readFileSync(db).subarray(0, 512), page1, 'the commit left page 1 as it was');
      assert.equal(inPlace(), 1, 'the second backup was read in place first');
      assert.equal(staged().length > copies, true, 'the disturbed read was thrown away, and a copy taken');
    } finally {
      writer.close();
    }
    assert.deepEqual(await restoredTags(svc, db), [{ id: 1, tag: 'new' }, { id: 3000, tag: 'new' }]);
  });

  it('a database in WAL mode is copied (its header says so, with no -wal beside it), and at once the next time', async () => {
    const { db, svc, staged, inPlace } = setup('in-place-wal');
    assert.equal((await svc.createBackup()).success, true);
    withNative(db, PRAGMAS, (n) => {
      n.pragma('journal_mode = WAL');
      n.exec("UPDATE t SET tag = 'new' WHERE id = 3000");
    });
    assert.equal(fs.existsSync(`${db}-wal`), false);
    let copies = staged().length;
    assert.equal((await svc.createBackup()).success, true);
    assert.equal(inPlace(), 1, 'read in place until its key told WAL mode');
    assert.equal(staged().length > copies, true, 'then copied');
    withNative(db, PRAGMAS, (n) => n.exec("UPDATE t SET tag = 'newer' WHERE id = 3000"));
    copies = staged().length;
    assert.equal((await svc.createBackup()).success, true);
    assert.equal(inPlace(), 1, 'the last generation found WAL mode: the next is copied at once, not read in place first');
    assert.equal(staged().length > copies, true);
    assert.deepEqual(await restoredTags(svc, db), [{ id: 1, tag: 'old' }, { id: 3000, tag: 'newer' }]);
    assert.deepEqual(nativeQuery(db, PRAGMAS, 'PRAGMA journal_mode'), [{ journal_mode: 'wal' }]);
  });

  it('a file that holds more than its pages (padded past them) is copied first, cut to its pages', async () => {
    const { db, svc, staged } = setup('in-place-padded');
    assert.equal((await svc.createBackup()).success, true);
    const copies = staged().length;
    fs.appendFileSync(db, new Uint8Array(64 * 4096));
    const r = await svc.createBackup();
    assert.equal(r.success, true, r.error);
    assert.equal(staged().length > copies, true, 'a snapshot copy was staged');
    assert.deepEqual(await restoredTags(svc, db), [{ id: 1, tag: 'old' }, { id: 3000, tag: 'old' }]);
  });

  it('a key that fails while the file is read (a database to copy instead) ends the read at once, and is handled', async () => {
    const { db } = setup('in-place-key-fails');
    const fd = fs.openSync(db, 'r');
    let reads = 0;
    const source = {
      size: fs.fstatSync(fd).size,
      read: async (offset: number, into: Uint8Array) => {
        reads++;
        await new Promise((r) => setTimeout(r, 40));
        return fs.readSync(fd, into, 0, into.length, offset);
      },
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const key = new Promise<Uint8Array>((_, reject) => setTimeout(() => reject(new Error('page 1 says WAL mode')), 10));
      await assert.rejects(backupGeneration(new NodeFileStore(), path.join(path.dirname(db), 'store'), source, key, {}, { now: new Date() }), /WAL mode/);
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      process.off('unhandledRejection', onUnhandled);
      fs.closeSync(fd);
    }
    assert.deepEqual(unhandled, []);
    assert.equal(reads, 1, 'of the 3 chunks of 4 MiB, only the one under way when the key failed was read');
  });
});

