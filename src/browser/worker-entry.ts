/**
 * The dedicated worker of the browser build: the engine over OPFS, the backup
 * service over the OPFS file store, idb-keyval as the catalog. Exposes at
 * once; the engine loads on the first call.
 */
import type { Endpoint } from 'comlink';
import { get, set } from 'idb-keyval';
import { fetchEngine } from '../engine/engine.ts';
import { openDatabase, type OpenOptions } from '../engine/database.ts';
import { OpfsVFS } from '../vfs/opfs-vfs.ts';
import { OpfsFileStore } from '../files/opfs-file-store.ts';
import { exposeKeep } from '../worker/expose.ts';
import type { KeepHost } from '../worker/api.ts';
import { browserPageChecks } from '../worker/page-check-pool.ts';
import { PAGE_CHECK_WORKER, servePageChecks } from '../worker/page-check-task.ts';

let host: Promise<KeepHost> | undefined;

// The page-check pool runs this same script under its own name (page-check-pool.ts): it serves checks, never the API or the engine.
if (self.name === PAGE_CHECK_WORKER) servePageChecks(self as unknown as Parameters<typeof servePageChecks>[0]);
else exposeKeep(self as unknown as Endpoint, (options) => {
  host ??= (async () => {
    // Bundlers emit the wasm as an asset for this URL; or pass wasmUrl to openCipherkeep().
    const engine = await fetchEngine(options.wasmUrl ?? new URL('./mc-wa-sqlite.wasm', import.meta.url));
    const vfsName = engine.registerVFS(new OpfsVFS('cipherkeep-opfs', engine.module));
    const pageChecks = browserPageChecks({ workers: options.pageCheckWorkers });
    const keepHost: KeepHost = {
      files: new OpfsFileStore(),
      open: (path: string, o: OpenOptions) => openDatabase(engine, vfsName, path, o),
      catalog: { get, set },
      engineMemoryBytes: () => engine.module.HEAPU8.byteLength,
      checkPages: pageChecks.checkPages,
      pageCheckStats: pageChecks.stats,
    };
    return keepHost;
  })().catch((e) => {
    host = undefined;
    throw e;
  });
  return host;
});
