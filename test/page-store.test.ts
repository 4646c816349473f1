/**
 * The page store (incremental backups) on memory and the Node/Deno
 * filesystem: the contract suites, retention rules, and real processes
 * killed mid-backup and mid-collection.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MemoryFileStore, MemoryVFS, openDatabaseWith, type CipherSettings } from '../src/index.ts';
import { nodeBackupHost, nodeEngine } from '../src/node.ts';
import { planRetention } from '../src/backup/page-store/index.ts';
import { pageStoreContract, type PageStoreTestHost } from './contract/page-store.contract.ts';
import { pageStoreTamperContract } from './contract/page-store-tamper.contract.ts';
import { pageStoreCrashContract } from './contract/page-store-crash.contract.ts';
import { nativeQuery, rawKey, tempDir } from './helpers.ts';

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

for (const [label, host] of hosts) {
  pageStoreContract(label, host);
  pageStoreTamperContract(label, host);
  pageStoreCrashContract(label, host);
}

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
