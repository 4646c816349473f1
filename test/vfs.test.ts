/** The VFS contract against the in-memory VFS and the Node/Deno filesystem VFS. */
import fs from 'node:fs';
import path from 'node:path';
import { MemoryVFS, openDatabaseWith } from '../src/index.ts';
import { nodeEngine, openDatabase } from '../src/node.ts';
import { vfsContract } from './contract/vfs.contract.ts';
import { tempDir } from './helpers.ts';

const { engine } = await nodeEngine();
const memory = new MemoryVFS('cipherkeep-test-memory', engine.module);
const memoryName = engine.registerVFS(memory);

vfsContract('memory', {
  open: (name, options) => openDatabaseWith(engine, memoryName, name, options),
  readFile(name) {
    const file = memory.files.get(memory.resolve(name));
    return file ? file.data.slice(0, file.size) : null;
  },
});

const dir = tempDir('vfs');
vfsContract('node:fs', {
  open: (name, options) => openDatabase(path.join(dir, name), options),
  readFile: (name) => (fs.existsSync(path.join(dir, name)) ? new Uint8Array(fs.readFileSync(path.join(dir, name))) : null),
});
