/**
 * The test page: puts the page API on window, plus a few OPFS helpers, for
 * Playwright tests to drive with page.evaluate(). Bytes cross as base64.
 */
import * as Comlink from 'comlink';
import * as cipherkeep from '../../src/browser.ts';
import type { KeepClient, OpenCipherkeepOptions } from '../../src/browser.ts';
import { installTransferHandlers, toWire, type WireError } from '../../src/worker/protocol.ts';
import type { VfsWorkerApi } from './vfs-worker.ts';

const toBase64 = (bytes: Uint8Array) => {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
};
const fromBase64 = (b64: string) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));

async function fileHandle(path: string, create = false): Promise<FileSystemFileHandle> {
  let dir = await navigator.storage.getDirectory();
  const parts = path.split('/').filter(Boolean);
  for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p, { create });
  return dir.getFileHandle(parts.at(-1)!, { create });
}

let vfsWorker: Comlink.Remote<VfsWorkerApi> | null = null;

const harness = {
  keep: null as KeepClient | null,
  /**
   * Calls the VFS contract's worker (test/browser/vfs-worker.ts); bytes come
   * back as base64, errors as plain data, for Playwright to rebuild.
   */
  async vfs(method: keyof VfsWorkerApi, args: unknown[]): Promise<{ value: unknown } | { error: WireError }> {
    installTransferHandlers();
    vfsWorker ??= Comlink.wrap<VfsWorkerApi>(new Worker('/harness/vfs-worker.js', { type: 'module' }));
    try {
      const value = await (vfsWorker[method] as (...a: unknown[]) => Promise<unknown>)(...args);
      return { value: value instanceof Uint8Array ? toBase64(value) : value };
    } catch (e) {
      return { error: toWire(e) };
    }
  },
  async open(options: Partial<OpenCipherkeepOptions> = {}): Promise<KeepClient> {
    harness.keep = await cipherkeep.openCipherkeep({
      worker: '/worker.js', wasmUrl: '/mc-wa-sqlite.wasm', databasePath: '/app.db', backupDir: '/backups', password: 'pw', create: true, ...options,
    });
    return harness.keep;
  },
  async readOpfs(path: string): Promise<string> {
    return toBase64(new Uint8Array(await (await (await fileHandle(path)).getFile()).arrayBuffer()));
  },
  async writeOpfs(path: string, base64: string): Promise<void> {
    const w = await (await fileHandle(path, true)).createWritable();
    await w.write(fromBase64(base64));
    await w.close();
  },
  async listOpfs(dir = '/'): Promise<string[]> {
    let handle = await navigator.storage.getDirectory();
    for (const p of dir.split('/').filter(Boolean)) handle = await handle.getDirectoryHandle(p);
    const names: string[] = [];
    for await (const [name] of (handle as unknown as { entries(): AsyncIterable<[string, unknown]> }).entries()) names.push(name);
    return names.sort();
  },
  /** Writes files of zeros named `<prefix>-N` until the origin's quota is used up; returns bytes written. */
  async fillQuota(prefix: string): Promise<number> {
    let written = 0;
    for (let i = 0; ; i++) {
      const { quota = 0, usage = 0 } = await navigator.storage.estimate();
      const n = Math.min(1 << 20, quota - usage);
      if (n <= 0) return written;
      try {
        const w = await (await fileHandle(`${prefix}-${i}`, true)).createWritable();
        await w.write(new Uint8Array(n));
        await w.close(); // each file is committed on its own, so a later failure keeps the earlier ones
        written += n;
      } catch {
        return written; // QuotaExceededError: full
      }
    }
  },
};

declare global {
  interface Window {
    cipherkeep: typeof cipherkeep;
    harness: typeof harness;
  }
}
window.cipherkeep = cipherkeep;
window.harness = harness;
document.getElementById('status')!.textContent = 'ready';
