/**
 * The page store (incremental backups) on memory and the Node/Deno
 * filesystem: the contract suites, retention rules, and real processes
 * killed mid-backup and mid-collection.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { MemoryFileStore, MemoryVFS, openDatabaseWith, type CipherSettings, type FileStore } from '../src/index.ts';
import { NodeFileStore, nodeBackupHost, nodeEngine } from '../src/node.ts';
import { backupGeneration, planRetention } from '../src/backup/page-store/index.ts';
import { Fixture, pageStoreContract, readAll, type PageStoreTestHost } from './contract/page-store.contract.ts';
import { scanStore } from '../src/backup/page-store/state.ts';
import { pageStoreTamperContract } from './contract/page-store-tamper.contract.ts';
import { pageStoreCrashContract } from './contract/page-store-crash.contract.ts';
import { fixtureCommand, nativeQuery, rawKey, tempDir } from './helpers.ts';

const { engine } = await nodeEngine();
const memory = new MemoryVFS('cipherkeep-page-store-memory', engine.module);
const memoryName = engine.registerVFS(memory);
const memoryFiles = new MemoryFileStore(memory);
let dirs = 0;

/** Native SQLCipher reads the bytes (through a temp file). */
function nativeRows(bytes: Uint8Array, keyHex: string, sql: string, cipher: CipherSettings = {}): unknown[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cipherkeep-native-'));
  try {
    fs.writeFileSync(path.join(dir, 'copy.db'), bytes);
    return nativeQuery(path.join(dir, 'copy.db'), [...rawKey(keyHex), ...(cipher.pageSize ? [`cipher_page_size = ${cipher.pageSize}`] : [])], sql);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const hosts: Array<[string, PageStoreTestHost]> = [
  ['memory', {
    files: memoryFiles,
    open: (p, o) => openDatabaseWith(engine, memoryName, p, o),
    async freshDir() {
      const dir = `/ps${++dirs}`;
      await memoryFiles.ensureDir(dir);
      return dir;
    },
    nativeRows,
  }],
  ['node:fs', (() => {
    const base = tempDir('page-store');
    const host = nodeBackupHost();
    return { ...host, freshDir: async () => fs.mkdtempSync(path.join(base, 'case-')), nativeRows };
  })()],
];

/**
 * The filesystem store without `readInto` (each read a new buffer): the
 * page store's other way of reading packs, for stores that lack it.
 */
function withoutReadInto(store: FileStore): FileStore {
  return new Proxy(store, {
    get: (target, name) => (name === 'readInto' ? undefined : typeof target[name as keyof FileStore] === 'function' ? (target[name as keyof FileStore] as Function).bind(target) : target[name as keyof FileStore]),
  });
}
hosts.push(['node:fs without readInto', (() => {
  const base = tempDir('page-store-copying');
  return { files: withoutReadInto(new NodeFileStore()), open: nodeBackupHost().open, freshDir: async () => fs.mkdtempSync(path.join(base, 'case-')), nativeRows };
})()]);

for (const [label, host] of hosts) {
  pageStoreContract(label, host);
  pageStoreTamperContract(label, host);
  if (!label.includes('readInto')) pageStoreCrashContract(label, host); // how packs are read changes nothing a crash can reach
}

describe('page store: a snapshot read that fails', { timeout: 60_000 }, () => {
  it('while the first pass waits between chunks is the backup\'s error, not an unhandled rejection', async () => {
    const dir = tempDir('page-store-read-fails');
    const size = 64 * 4096 * 4; // several of the first pass's chunks
    let reads = 0;
    // The first read takes a while (so the pass then yields), the next one comes back short at once.
    const source = {
      size,
      read: async (_offset: number, into: Uint8Array) => (++reads === 1 ? (await new Promise((r) => setTimeout(r, 30)), into.length) : 0),
    };
    await assert.rejects(
      backupGeneration(new NodeFileStore(), path.join(dir, 'store'), source, new Uint8Array(32), {}, { now: new Date() }),
      (e: Error & { code?: string }) => e.code === 'CORRUPT' && /ended early/.test(e.message),
    );
    assert.equal(reads, 2);
  });
});

describe('page store retention rules', { timeout: 10_000 }, () => {
  const at = (iso: string, seq: number) => ({ seq, createdAtMs: Date.parse(iso) });
  const now = new Date('2026-03-31T12:00:00Z');
  // Four a day for 30 days, 06:00, 10:00, 14:00, 18:00 UTC, March 2026.
  const gens = Array.from({ length: 120 }, (_, i) => at(`2026-03-${String(1 + Math.floor(i / 4)).padStart(2, '0')}T${String(6 + (i % 4) * 4).padStart(2, '0')}:00:00Z`, i + 1));
  const kept = (s: Parameters<typeof planRetention>[1]) => [...planRetention(gens, s, now)].sort((a, b) => b - a);

  it('keeps the newest N, and never drops the newest for age', () => {
    assert.deepEqual(kept({ keepLast: 3 }), [120, 119, 118]);
    assert.deepEqual(kept({ keepLast: 0 }), [120], 'the newest is always kept');
    // Now is Mar 31 12:00; the newest are Mar 30 06:00 … 18:00: two of them are under a day old.
    assert.deepEqual(kept({ keepLast: 10, maxAgeDays: 1 }), [120, 119]);
    assert.deepEqual([...planRetention([at('2025-01-01T00:00:00Z', 7)], { keepLast: 5, maxAgeDays: 1 }, now)], [7]);
  });

  it('keeps the newest of each of the last N days and M ISO weeks that have one', () => {
    assert.deepEqual(kept({ keepLast: 1, daily: 3 }), [120, 116, 112]);
    // ISO weeks of March 2026: Mon 2, 9, 16, 23, 30. Newest of weeks W14 (Mar 30–31), W13, W12.
    assert.deepEqual(kept({ keepLast: 1, weekly: 3 }), [120, 116, 88]);
    assert.deepEqual(kept({ keepLast: 2, daily: 2, weekly: 2 }), [120, 119, 116]);
  });

  it('rejects bad settings', () => {
    assert.throws(() => planRetention(gens, { keepLast: -1 }, now), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => planRetention(gens, { daily: 1.5 }, now), { code: 'INVALID_ARGUMENT' });
  });
});

describe('page store: processes killed mid-backup and mid-collection', { timeout: 600_000 }, () => {
  const TORTURE = !!process.env.TORTURE;

  /** Runs the child; kills it `delayMs` after it says "ready" (never, when null). Resolves with its output. */
  function child(args: string[], key: string, delayMs: number | null): Promise<string> {
    const proc = spawn(...fixtureCommand('page-store-child.ts', args), {
      env: { ...process.env, CK_KEY: key }, stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    return new Promise((resolve) => {
      proc.stdout.on('data', (d) => {
        out += d;
        if (delayMs !== null && out.includes('ready') && !proc.killed) setTimeout(() => proc.kill('SIGKILL'), delayMs);
      });
      proc.on('close', () => resolve(out));
    });
  }

  it('SIGKILL at random moments: every kept generation restores byte for byte; the next run cleans up', async () => {
    const f = await new Fixture({ ...nodeBackupHost(), freshDir: async () => tempDir('page-store-kill') }).setup(40_000);
    const files = f.files;
    const points = TORTURE ? 60 : 5;
    const tally = { backup: 0, gc: 0, finished: 0, committed: 0 };
    // Takes the lock as the children do: one left by a killed child is taken over (its process is dead).
    const locked = async <T>(fn: () => Promise<T>) => {
      await files.ensureDir(f.store);
      const lock = await files.lock(`${f.store}.lock`, 10_000);
      try {
        return await fn();
      } finally {
        await lock.release();
      }
    };
    await locked(() => f.backup()); // the full one: the children's backups are incremental
    let duration = { backup: 0, gc: 0 };
    for (let i = -1; i < points; i++) {
      for (const op of ['backup', 'gc'] as const) {
        await f.change(op === 'backup' ? 300 : 100);
        if (op === 'gc') await locked(() => f.backup({ repackBelow: 0 })); // garbage for the collection to find
        const snap = await f.snapshot();
        const snapBytes = await readAll(files, snap);
        const before = Math.max(0, ...(await scanStore(files, f.store)).manifests.map((m) => m.seq));
        // The first round runs to the end and times each operation; later rounds kill somewhere within it.
        const out = await child([op, f.store, op === 'backup' ? snap : '-', String(++f.day)], f.keyHex, i < 0 ? null : Math.random() * duration[op] * 1.3);
        if (i < 0) duration = { ...duration, [op]: JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!).ms };
        await files.remove(snap);
        const after = Math.max(0, ...(await scanStore(files, f.store)).manifests.map((m) => m.seq));
        if (after > before) {
          f.snapshots.set(String(after), snapBytes);
          tally.committed++;
        }
        if (out.includes('{')) tally.finished++;
        tally[op]++;
        await locked(() => f.everyRetainedRestores());
      }
    }
    await f.change(5);
    await locked(() => f.backup({ retention: { keepLast: 3 } }));
    const scan = await scanStore(files, f.store);
    assert.deepEqual(scan.tmps, []);
    const named = new Set(scan.manifests.flatMap((m) => m.header!.packs));
    assert.deepEqual(scan.packs.filter((p) => !named.has(p.name)).map((p) => p.name), []);
    await locked(() => f.everyRetainedRestores());
    await f.db.close();
    console.log(`figures: kills ${tally.backup + tally.gc - 2} (backup ${tally.backup - 1}, gc ${tally.gc - 1}; ${tally.finished - 2} finished before the kill, ${tally.committed} generations committed); timed backup ${duration.backup.toFixed(0)} ms, gc ${duration.gc.toFixed(0)} ms; 0 kept generations lost`);
  });
});
