/**
 * The other end of the browser page-check pool (page-check-pool.ts): a
 * dedicated worker started from the cipherkeep worker's own script under the
 * name PAGE_CHECK_WORKER, which checks the page HMACs of one range of an OPFS
 * file per task with the same check (page-check.ts) the worker uses in its thread.
 * It never loads the engine. Each task reads the file itself, so the pool
 * reads in parallel and nothing crosses between threads but a few numbers.
 */
import { createPageVerifier, type PageCheck, type PageSettings } from '../backup/page-check.ts';
import { SALT_BYTES } from '../engine/cipher.ts';
import { fileHandle, openSharedReader } from '../files/opfs-file-store.ts';

export const PAGE_CHECK_WORKER = 'cipherkeep-page-check';

export interface PageCheckTask {
  pageCheck: number;
  path: string;
  key: Uint8Array;
  settings: PageSettings;
  /** Pages from…to-1 (0-based). */
  from: number;
  to: number;
}

/** What a pool worker posts: ready once started; per task, progress (bytes) and then a result or an error. */
export type PageCheckReply =
  | { pageCheckReady: true }
  | { pageCheck: number; progress: number }
  | { pageCheck: number; result: PageCheck }
  | { pageCheck: number; error: string };

interface Scope {
  postMessage(message: PageCheckReply): void;
  addEventListener(type: 'message', listener: (e: MessageEvent<PageCheckTask>) => void): void;
}

export function servePageChecks(scope: Scope): void {
  scope.addEventListener('message', ({ data: task }) => {
    if (typeof task?.pageCheck !== 'number') return;
    run(task, (progress) => scope.postMessage({ pageCheck: task.pageCheck, progress })).then(
      (result) => scope.postMessage({ pageCheck: task.pageCheck, result }),
      (e: unknown) => scope.postMessage({ pageCheck: task.pageCheck, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }),
    ).finally(() => task.key.fill(0));
  });
  scope.postMessage({ pageCheckReady: true });
}

/** One buffer per pool worker for every task: a buffer per task left megabytes of garbage per range in each pool worker (100 MB at the peak of a 200 MB check). */
const CHUNK_BYTES = 1 << 20;
let buffer = new Uint8Array(0);

/** The same check as checkPageHmacs (page-check.ts: createPageVerifier is its per-page form), over pages from…to-1 only. */
async function run({ path, key, settings, from, to }: PageCheckTask, onProgress: (bytes: number) => void): Promise<PageCheck> {
  const handle = await fileHandle(path);
  if (!handle) throw new DOMException(`no such file: ${path}`, 'NotFoundError');
  const reader = await openSharedReader(handle);
  try {
    const salt = new Uint8Array(SALT_BYTES);
    if ((await reader.read(0, salt)) < SALT_BYTES) return { ok: false, page: 1 };
    const verifier = await createPageVerifier(key, salt, settings);
    const { pageSize } = settings;
    const chunkPages = Math.max(1, Math.floor(CHUNK_BYTES / pageSize));
    if (buffer.length < chunkPages * pageSize) buffer = new Uint8Array(chunkPages * pageSize);
    for (let first = from; first < to; first += chunkPages) {
      const want = Math.min(chunkPages, to - first);
      const count = Math.floor((await reader.read(first * pageSize, buffer.subarray(0, want * pageSize))) / pageSize);
      for (let i = 0; i < count; i++) {
        if (!verifier.check(buffer.subarray(i * pageSize, (i + 1) * pageSize), first + i + 1)) return { ok: false, page: first + i + 1 };
      }
      if (count < want) return { ok: false, page: first + count + 1 }; // the file ended early
      onProgress(count * pageSize);
    }
    return { ok: true, pages: to - from };
  } finally {
    reader.close();
  }
}
