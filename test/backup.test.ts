/** The backup contract against the memory store and the Node/Deno filesystem store. */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { MemoryFileStore, MemoryVFS, openDatabaseWith } from '../src/index.ts';
import { nodeBackupHost, nodeEngine } from '../src/node.ts';
import { backupContract, type SpaceLimit } from './contract/backup.contract.ts';
import { tempDir } from './helpers.ts';

const { engine } = await nodeEngine();
const memory = new MemoryVFS('cipherkeep-backup-memory', engine.module);
const memoryName = engine.registerVFS(memory);
const store = new MemoryFileStore(memory);
let dirs = 0;

backupContract('memory', {
  host: { files: store, open: (p, o) => openDatabaseWith(engine, memoryName, p, o) },
  async freshDir() {
    const dir = `/t${++dirs}`;
    await store.ensureDir(dir);
    return dir;
  },
  readBytes: (p) => {
    const f = memory.files.get(memory.resolve(p))!;
    return f.data.slice(0, f.size);
  },
  writeBytes: (p, bytes) => void memory.files.set(memory.resolve(p), { data: bytes.slice(), size: bytes.length }),
  async limitSpace(): Promise<SpaceLimit> {
    return {
      setFree: async (bytes) => void (store.capacityBytes = (await usedBytes()) + bytes),
      fillNow: async () => void (store.capacityBytes = usedBytesNow()),
      release: async () => void (store.capacityBytes = Number.MAX_SAFE_INTEGER),
    };
  },
});

async function usedBytes(): Promise<number> {
  return usedBytesNow();
}

function usedBytesNow(): number {
  let n = 0;
  for (const f of memory.files.values()) n += f.size;
  return n;
}

const base = tempDir('backup');
backupContract('node:fs', {
  host: nodeBackupHost(),
  async freshDir() {
    return fs.mkdtempSync(path.join(base, 'case-'));
  },
  readBytes: (p) => new Uint8Array(fs.readFileSync(p)),
  writeBytes: (p, bytes) => fs.writeFileSync(p, bytes),
  async limitSpace(dir): Promise<SpaceLimit | null> {
    // A real small filesystem: a tmpfs mounted on the backup directory (needs root; CI is root).
    if (process.getuid?.() !== 0 && !process.env.CI) return null;
    let mounted = false;
    const unmount = () => {
      if (mounted) execFileSync('umount', [dir]);
      mounted = false;
    };
    return {
      async setFree(bytes) {
        unmount();
        execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${Math.ceil(bytes / 4096) * 4096},mode=0700`, 'tmpfs', dir]);
        mounted = true;
      },
      async fillNow() {
        // Synchronous on purpose: the disk is full before the export writes its next chunk.
        const fd = fs.openSync(path.join(dir, 'filler'), 'a');
        const block = new Uint8Array(64 * 1024);
        try {
          for (;;) fs.writeSync(fd, block);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
        } finally {
          fs.closeSync(fd);
        }
      },
      async release() {
        unmount();
      },
    };
  },
});
