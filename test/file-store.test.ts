/** The FileStore read contract (test/contract/file-store.contract.ts) on the memory store and the Node/Deno filesystem store. */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { MemoryFileStore, MemoryVFS } from '../src/index.ts';
import { NodeFileStore, nodeEngine } from '../src/node.ts';
import type { FileStore } from '../src/files/file-store.ts';
import { fileStoreReadCases } from './contract/file-store.contract.ts';
import { tempDir } from './helpers.ts';

const { engine } = await nodeEngine();
const memory = new MemoryFileStore(new MemoryVFS('cipherkeep-file-store-memory', engine.module));
await memory.ensureDir('/fs');

const stores: Array<[string, FileStore, () => string]> = [
  ['memory', memory, () => '/fs'],
  ['node:fs', new NodeFileStore(), () => fs.mkdtempSync(path.join(tempDir('file-store'), 'case-'))],
];

for (const [label, files, freshDir] of stores) {
  describe(`FileStore reads: ${label}`, () => {
    it('read and readInto agree on every case', async () => {
      const results = await fileStoreReadCases(files, freshDir());
      assert.ok(results.length >= 6, `${results.length} cases ran`);
      assert.deepEqual(results.filter((r) => r.failures.length), []);
    });
  });
}
