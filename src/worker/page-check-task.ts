/**
 * The other end of the browser page-check pool (page-check-pool.ts): a
 * dedicated worker started from the cipherkeep worker's own script under the
 * name PAGE_CHECK_WORKER, which checks the page HMACs of one range of an OPFS
 * file per task with the same in-thread check (page-check.ts) the worker uses.
 * It never loads the engine. Each task reads the file itself, so the pool
 * reads in parallel and nothing crosses between threads but a few numbers.
 */
import { checkPageHmacs, type PageCheck, type PageSettings } from '../backup/page-check.ts';
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

async function run({ path, key, settings, from, to }: PageCheckTask, onProgress: (bytes: number) => void): Promise<PageCheck> {
  const handle = await fileHandle(path);
  if (!handle) throw new DOMException(`no such file: ${path}`, 'NotFoundError');
  const reader = await openSharedReader(handle);
  try {
    let reported = from * settings.pageSize;
    // checkPageHmacs checks from page `from + 1` to the end of `size`: the end of this range.
    return await checkPageHmacs(reader.read, to * settings.pageSize, key, settings, (done) => {
      onProgress(done - reported);
      reported = done;
    }, from + 1);
  } finally {
    reader.close();
  }
}
