/**
 * cipherkeep for Node and Deno: one engine per thread over the filesystem VFS.
 */
import { nodePageChecks, nodePageMacs } from './node-page-check.ts';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { startKeep, type KeepClient } from './worker/client.ts';
import type { KeepOptions } from './worker/api.ts';
export type { KeepClient, KeepOptions };
export type { KeepTarget, KeepS3Options } from './worker/keep-targets.ts';
import { ENGINE_PIN } from './engine/pin.ts';
import { createEngine, type Engine } from './engine/engine.ts';
import { openDatabase as openWith, type Database, type OpenOptions } from './engine/database.ts';
import { NodeFsVFS } from './vfs/node-fs-vfs.ts';
import { NodeFileStore } from './files/node-file-store.ts';
import { BackupService as CoreBackupService, type BackupHost, type BackupServiceOptions } from './backup/backup-service.ts';

export * from './index.ts';

let shared: Promise<{ engine: Engine; vfsName: string }> | undefined;

/** Reads the pinned wasm from the installed package (Node and Deno alike). */
export async function readEngineWasm(): Promise<Uint8Array> {
  const require = createRequire(import.meta.url);
  return new Uint8Array(await fs.readFile(require.resolve(`${ENGINE_PIN.package}/${ENGINE_PIN.wasm}`)));
}

/** The engine of this thread with the filesystem VFS registered, created on first use. */
export function nodeEngine(): Promise<{ engine: Engine; vfsName: string }> {
  shared ??= (async () => {
    const engine = await createEngine(await readEngineWasm());
    const vfsName = engine.registerVFS(new NodeFsVFS('cipherkeep-fs', engine.module));
    return { engine, vfsName };
  })().catch((e) => {
    shared = undefined;
    throw e;
  });
  return shared;
}

/** Opens (or with `create: true` creates) an encrypted database file. */
export async function openDatabase(path: string, options: OpenOptions): Promise<Database> {
  const { engine, vfsName } = await nodeEngine();
  return openWith(engine, vfsName, path, options);
}

/** Files and databases on the local filesystem, for the backup service. */
/** One pool of page-checking threads for every service of this thread. */
const pageChecks = nodePageChecks();

export function nodeBackupHost(): BackupHost {
  return {
    files: new NodeFileStore(),
    open: openDatabase,
    checkPages: pageChecks,
    pageMacs: nodePageMacs,
    readLock: async (path, timeoutMs) => {
      const { engine, vfsName } = await nodeEngine();
      return engine.hostFor(vfsName).readLock(path, timeoutMs);
    },
  };
}

/** The backup service over the local filesystem, with a cross-process lock file. */
export class BackupService extends CoreBackupService {
  constructor(options: Omit<BackupServiceOptions, 'host'> & { host?: BackupHost }) {
    super({ ...options, host: options.host ?? nodeBackupHost() } as BackupServiceOptions);
  }
}

export { NodeFileStore };

/**
 * Runs cipherkeep in a worker thread and opens the database there: the same
 * typed, non-blocking API browsers get. Crypto and I/O never block this thread.
 */
export async function openKeepWorker(options: KeepOptions): Promise<KeepClient> {
  const worker = new Worker(new URL(workerEntry(), import.meta.url));
  return startKeep(
    {
      endpoint: nodeEndpoint(worker),
      onFailure(fail) {
        worker.once('error', fail);
        worker.once('exit', (code) => fail(new Error(`worker exited with code ${code}`)));
      },
      terminate: async () => void (await worker.terminate()),
    },
    options,
  );
}

/**
 * The worker thread's first module. The package runs its compiled JavaScript
 * (dist/node-worker.js). From the TypeScript sources (this repository's
 * tests), Deno runs the .ts entry itself, and Node needs a bootstrap that
 * registers tsx, since Node 20 does not pass `--import tsx` on to worker
 * threads. The entry must not start with an await: a Deno worker that awaits
 * before Comlink.expose loses its first message.
 */
function workerEntry(): string {
  if (!import.meta.url.endsWith('.ts')) return './node-worker.js';
  return 'Deno' in globalThis ? './node-worker.ts' : './node-worker-bootstrap.mjs';
}
