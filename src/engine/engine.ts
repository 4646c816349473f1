/**
 * The wasm engine: SQLite 3.53 with SQLite3 Multiple Ciphers, instantiated from
 * bytes whose SHA-256 must match the pin in ./pin.ts. Every host hands us
 * the bytes (read from disk on Node/Deno, fetched in browsers), so one check
 * covers every runtime.
 */
import SQLiteESMFactory from '@journeyapps/wa-sqlite/dist/mc-wa-sqlite.mjs';
import * as SQLite from '@journeyapps/wa-sqlite';
import { ENGINE_PIN } from './pin.ts';
import { EngineLoadError } from './errors.ts';
import { toHex } from './bytes.ts';
import type { HostVFS } from '../vfs/host-vfs.ts';

export interface Engine {
  readonly sqlite3: SQLiteAPI;
  readonly module: any;
  /** Registers a VFS and wraps it with sqlite3mc's cipher layer; returns the name to open with. */
  registerVFS(vfs: HostVFS<unknown>): string;
  /** The host VFS behind a wrapped name. */
  hostFor(vfsName: string): HostVFS<unknown>;
  /** sqlite3_open_v2, one at a time (see below). */
  open(path: string, flags: number, vfsName: string): Promise<number>;
}

export interface EngineOptions {
  /** Expected SHA-256 (hex) of the wasm; defaults to the pinned build. */
  sha256?: string;
}

/**
 * Browser-style loader: fetches the wasm from a URL (with a bundler,
 * `new URL('@journeyapps/wa-sqlite/dist/mc-wa-sqlite.wasm', import.meta.url)`),
 * then checks and instantiates it like every other host.
 */
export async function fetchEngine(url: string | URL, options: EngineOptions = {}): Promise<Engine> {
  let bytes: Uint8Array;
  try {
    const response = await fetch(url, { credentials: 'same-origin' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (e) {
    throw new EngineLoadError(`cannot fetch the wasm engine from ${String(url)}: ${(e as Error).message}`, { cause: e });
  }
  return createEngine(bytes, options);
}

export async function createEngine(wasmBinary: Uint8Array, options: EngineOptions = {}): Promise<Engine> {
  const expected = options.sha256 ?? ENGINE_PIN.sha256;
  const actual = toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', wasmBinary.slice())));
  if (actual !== expected) {
    throw new EngineLoadError(
      `wasm engine checksum mismatch: expected ${expected}, got ${actual}. ` +
        'The engine build changed; see wasm/README.md to pin a new one.',
    );
  }
  let module: any;
  try {
    module = await SQLiteESMFactory({ wasmBinary });
  } catch (e) {
    throw new EngineLoadError('failed to instantiate the wasm engine', { cause: e });
  }
  const sqlite3 = SQLite.Factory(module);
  const hosts = new Map<string, HostVFS<unknown>>();
  // wa-sqlite's open_v2 returns the handle through one shared out-pointer and
  // awaits in between: two opens at once could both get the second handle
  // (seen under Deno as "cannot start a transaction within a transaction").
  let opening: Promise<unknown> = Promise.resolve();

  return {
    sqlite3,
    module,
    registerVFS(vfs) {
      const wrapped = `multipleciphers-${vfs.name}`;
      const existing = hosts.get(wrapped);
      if (existing === vfs) return wrapped;
      if (existing) throw new EngineLoadError(`another VFS is already registered as ${vfs.name}`);
      sqlite3.vfs_register(vfs as unknown as SQLiteVFS, false);
      // Without this wrapper `PRAGMA key` fails: the cipher layer lives in a VFS shim.
      const rc = module.ccall('sqlite3mc_vfs_create', 'number', ['string', 'number'], [vfs.name, 0]);
      if (rc !== SQLite.SQLITE_OK) throw new EngineLoadError(`sqlite3mc_vfs_create failed (${rc})`);
      hosts.set(wrapped, vfs);
      return wrapped;
    },
    open(path, flags, vfsName) {
      const next = opening.then(() => sqlite3.open_v2(path, flags, vfsName));
      opening = next.catch(() => {});
      return next;
    },
    hostFor(vfsName) {
      const host = hosts.get(vfsName);
      if (!host) throw new EngineLoadError(`no VFS registered as ${vfsName}`);
      return host;
    },
  };
}
