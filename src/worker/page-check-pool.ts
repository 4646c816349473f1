/**
 * Page HMAC checks on every core, for the browser worker: the BackupHost
 * checkPages hook (as src/node-page-check.ts is for Node and Deno). A file of
 * 8 MiB or more is split into one range per pool worker; each pool worker
 * reads its range from OPFS itself and checks it (page-check-task.ts).
 *
 * The pool workers run the cipherkeep worker's own script again, started
 * under a name that makes it serve page checks instead of the API, so no
 * bundler or copy step has a second file to find. They start on first use,
 * are reused, and end after a quiet minute. Where they cannot start (no
 * `Worker` inside workers, a script that cannot be loaded twice, no answer
 * within READY_MS) the pool gives up for good and returns null: the worker's
 * in-thread check does the work, slower but the same.
 */
import { checkInRanges, type PageCheck } from '../backup/page-check.ts';
import type { PageChecks } from '../backup/types.ts';
import { PAGE_CHECK_WORKER, type PageCheckReply, type PageCheckTask } from './page-check-task.ts';

const IDLE_MS = 60_000;
const READY_MS = 10_000;
/** More than this many threads hashing at once only shares the same memory bandwidth and OPFS. */
const MAX_WORKERS = 4;
const TASK_BYTES = 8 << 20;

interface Pending {
  resolve(r: PageCheck | null): void;
  onProgress(bytes: number): void;
}

/** What the pool has done since the worker started: for tests and benchmarks. */
export interface PagePoolStats {
  /** Pool workers started (0 when the pool was never needed or could not start), and how long the last start took until every worker was ready. */
  started: number;
  startMs: number;
  /** Ranges checked by pool workers, and how many distinct workers checked them. */
  ranges: number;
  workersUsed: number;
  /** Files the pool checked, and files it had to leave to the in-thread check. */
  files: number;
  fallbacks: number;
  /** The last file's check through the pool, from asking to answer. */
  lastCheckMs: number;
}

export function browserPageChecks(options: { minBytes?: number; workers?: number; scriptUrl?: string } = {}): { checkPages: PageChecks; stats(): PagePoolStats } {
  const minBytes = options.minBytes ?? 8 << 20;
  const size = Math.max(1, Math.min(options.workers ?? globalThis.navigator?.hardwareConcurrency ?? 1, MAX_WORKERS));
  const stats: PagePoolStats = { started: 0, startMs: 0, ranges: 0, workersUsed: 0, files: 0, fallbacks: 0, lastCheckMs: 0 };
  const used = new Set<number>();
  let broken = typeof Worker === 'undefined' || size < 2;
  let pool: Promise<Worker[]> | undefined;
  let next = 0;
  const pending = new Map<number, Pending>();
  let idle: ReturnType<typeof setTimeout> | undefined;

  const end = () => {
    const ending = pool;
    pool = undefined;
    for (const p of pending.values()) p.resolve(null);
    pending.clear();
    void ending?.then((ws) => ws.forEach((w) => w.terminate()), () => {});
  };
  const settle = () => {
    if (idle) clearTimeout(idle);
    idle = pending.size === 0 && pool ? setTimeout(end, IDLE_MS) : undefined;
  };
  const start = (): Promise<Worker[]> => (pool ??= timed(Promise.all(Array.from({ length: size }, (_, index) => spawn(index)))).catch((e: unknown) => {
    broken = true;
    end();
    throw e;
  }));
  const timed = async <T>(p: Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const v = await p;
    stats.startMs = Math.round(performance.now() - t0);
    return v;
  };
  const spawn = (index: number) => new Promise<Worker>((resolve, reject) => {
    const w = new Worker(options.scriptUrl ?? self.location.href, { type: ownType(), name: PAGE_CHECK_WORKER });
    stats.started++;
    const timer = setTimeout(() => reject(new Error('page-check worker did not start')), READY_MS);
    w.addEventListener('error', (e) => {
      e.preventDefault();
      clearTimeout(timer);
      reject(new Error('page-check worker failed'));
      // A worker that fails mid-task: its tasks go to the in-thread check.
      if (pool) end();
    });
    w.addEventListener('message', ({ data: m }: MessageEvent<PageCheckReply>) => {
      if ('pageCheckReady' in m) {
        clearTimeout(timer);
        return resolve(w);
      }
      const task = pending.get(m.pageCheck);
      if (!task) return;
      if ('progress' in m) return task.onProgress(m.progress);
      pending.delete(m.pageCheck);
      if ('result' in m) {
        stats.ranges++;
        used.add(index);
        stats.workersUsed = used.size;
      }
      task.resolve('result' in m ? m.result : null);
      settle();
    });
  });

  const checkPages: PageChecks = async (path, key, settings, fileSize, onBytes) => {
    // A plaintext-header file (no salt in it) is left to page-check.ts, which is given the salt.
    if (fileSize < minBytes || broken || settings.plaintextHeaderSize > 0) return null;
    const t0 = performance.now();
    let workers: Worker[];
    try {
      workers = await start();
    } catch {
      stats.fallbacks++;
      return null;
    }
    const { pageSize, hmacAlgorithm, kdfAlgorithm } = settings;
    const pages = fileSize / pageSize;
    let done = 0;
    const run = (w: Worker, from: number, to: number) => new Promise<PageCheck | null>((resolve) => {
      const id = ++next;
      pending.set(id, { resolve, onProgress: (n) => onBytes?.((done += n)) });
      settle();
      const task: PageCheckTask = { pageCheck: id, path, key: key.slice(), settings: { pageSize, hmacAlgorithm, kdfAlgorithm }, from, to };
      w.postMessage(task, [task.key.buffer]);
    });
    const result = await checkInRanges(workers, pages, Math.max(1, Math.floor(TASK_BYTES / pageSize)), run);
    if (!result) {
      stats.fallbacks++;
      return null;
    }
    stats.files++;
    stats.lastCheckMs = Math.round(performance.now() - t0);
    return result;
  };
  // Starting costs 60–180 ms: paid while the key is derived and the file copied, not before the check.
  checkPages.warm = (fileSize) => {
    if (fileSize >= minBytes && !broken) start().then(settle, () => {});
  };
  return { checkPages, stats: () => ({ ...stats }) };
}

/** The pool workers run this worker's script the way it was started: a module worker cannot call importScripts. */
function ownType(): WorkerType {
  try {
    (self as unknown as { importScripts(): void }).importScripts();
    return 'classic';
  } catch {
    return 'module';
  }
}
