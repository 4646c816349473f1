/**
 * Test worker: the engine over OpfsVFS with plain connections, so the VFS
 * contract (test/contract/vfs.contract.ts) can drive OPFS from Playwright.
 * Connections and open transactions are named by numbers.
 */
import * as Comlink from 'comlink';
import { fetchEngine } from '../../src/engine/engine.ts';
import { openDatabase, type Database, type OpenOptions, type Transaction } from '../../src/engine/database.ts';
import { OpfsVFS } from '../../src/vfs/opfs-vfs.ts';
import { installTransferHandlers } from '../../src/worker/protocol.ts';
import { OpfsFileStore } from '../../src/files/opfs-file-store.ts';
import { fileStoreReadCases, type CaseResult } from '../contract/file-store.contract.ts';

type Statement = 'exec' | 'query' | 'run';

installTransferHandlers();
let ready: Promise<{ open(path: string, o: OpenOptions): Promise<Database>; vfs: OpfsVFS }> | undefined;
const setup = () =>
  (ready ??= fetchEngine('/mc-wa-sqlite.wasm').then((engine) => {
    const vfs = new OpfsVFS('cipherkeep-opfs-contract', engine.module);
    const name = engine.registerVFS(vfs);
    return { vfs, open: (path: string, o: OpenOptions) => openDatabase(engine, name, path, o) };
  }));

const connections = new Map<number, Database>();
const transactions = new Map<number, { tx: Transaction; finish(commit: boolean): void; done: Promise<unknown> }>();
let last = 0;

const api = {
  async open(path: string, options: OpenOptions): Promise<number> {
    connections.set(++last, await (await setup()).open(path, options));
    return last;
  },

  call(id: number, method: Statement | 'close', args: unknown[]): Promise<unknown> {
    const db = connections.get(id)!;
    return (db[method] as (...a: unknown[]) => Promise<unknown>).call(db, ...args);
  },

  /** Starts Database.transaction() and holds it open until end(). */
  async begin(id: number): Promise<void> {
    let entered!: (tx: Transaction) => void;
    let finish!: (commit: boolean) => void;
    const inside = new Promise<Transaction>((resolve) => (entered = resolve));
    const done = connections.get(id)!.transaction((tx) => {
      entered(tx);
      return new Promise<void>((commit, rollback) => (finish = (ok) => (ok ? commit() : rollback(new Error('rolled back')))));
    });
    // If BEGIN fails, done rejects before fn runs; later outcomes are end()'s to report.
    const failed = done.then(() => new Promise<never>(() => {}));
    failed.catch(() => {});
    const tx = await Promise.race([inside, failed]);
    transactions.set(id, { tx, finish, done });
  },

  tx(id: number, method: Statement, args: unknown[]): Promise<unknown> {
    const { tx } = transactions.get(id)!;
    return (tx[method] as (...a: unknown[]) => Promise<unknown>)(...args);
  },

  async end(id: number, commit: boolean): Promise<void> {
    const t = transactions.get(id)!;
    transactions.delete(id);
    t.finish(commit);
    await t.done.catch((e) => {
      if (commit) throw e;
    });
  },

  /** A file's bytes as SQLite sees them: an empty journal made ahead of time does not exist. */
  async readFile(path: string): Promise<Uint8Array | null> {
    const { vfs } = await setup();
    const full = vfs.resolve(path);
    const size = vfs.info(full).size;
    if (size !== null) {
      const bytes = new Uint8Array(size);
      vfs.readRange(full, 0, bytes);
      return bytes;
    }
    if (vfs.readRange(full, 0, new Uint8Array(0)) !== null) return null; // held open by the VFS and empty
    try {
      let dir = await navigator.storage.getDirectory();
      const parts = full.split('/').filter(Boolean);
      for (const part of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(part);
      return new Uint8Array(await (await (await dir.getFileHandle(parts.at(-1)!)).getFile()).arrayBuffer());
    } catch (e) {
      if ((e as DOMException).name === 'NotFoundError') return null;
      throw e;
    }
  },

  /** The FileStore read contract (test/contract/file-store.contract.ts) on OpfsFileStore, in a fresh directory. */
  async fileStoreReadCases(): Promise<CaseResult[]> {
    const files = new OpfsFileStore();
    const dir = `/file-store-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    await files.ensureDir(dir);
    return fileStoreReadCases(files, dir);
  },
};

export type VfsWorkerApi = typeof api;
Comlink.expose(api);
