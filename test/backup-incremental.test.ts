/** The service's incremental backups against the memory store and the Node/Deno filesystem store. */
import fs from 'node:fs';
import path from 'node:path';
import { MemoryFileStore, MemoryVFS, openDatabaseWith } from '../src/index.ts';
import { nodeBackupHost, nodeEngine } from '../src/node.ts';
import { incrementalBackupContract } from './contract/backup-incremental.contract.ts';
import { tempDir } from './helpers.ts';

const { engine } = await nodeEngine();
const memory = new MemoryVFS('cipherkeep-incremental-memory', engine.module);
const memoryName = engine.registerVFS(memory);
const store = new MemoryFileStore(memory);
let dirs = 0;

incrementalBackupContract('memory', {
  host: { files: store, open: (p, o) => openDatabaseWith(engine, memoryName, p, o) },
  async freshDir() {
    const dir = `/i${++dirs}`;
    await store.ensureDir(dir);
    return dir;
  },
});

const base = tempDir('backup-incremental');
incrementalBackupContract('node:fs', {
  host: nodeBackupHost(),
  freshDir: async () => fs.mkdtempSync(path.join(base, 'case-')),
});
