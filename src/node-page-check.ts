/**
 * Page HMAC checks on every core, for Node and Deno: a file is split into
 * ranges of 8 MiB, each checked by the next free worker thread of a small pool with
 * node:crypto's native hashes (about twice hash-wasm's speed on this machine).
 * The pool starts on first use, keeps the process alive only while it works,
 * and ends after a quiet minute. Files below 8 MiB are left to the in-thread
 * check (starting threads would cost more than they save).
 */
import os from 'node:os';
import { Buffer } from 'node:buffer';
import { Worker } from 'node:worker_threads';
import type { CipherSettings } from './engine/cipher.ts';
import { checkInRanges, type PageCheck, type PageMacs } from './backup/page-check.ts';
import type { PageChecks } from './backup/types.ts';

const IDLE_MS = 60_000;
const WORKER_SCRIPT = new URL('./node-page-check-worker.mjs', import.meta.url);

type MacModule = { pageMacCheck(algorithm: string, key: Uint8Array, covered: number): (bytes: Buffer, at: number, skip: number, pgno: number) => boolean };
let macModule: Promise<MacModule | null> | undefined;

/**
 * The pool threads' page MAC (node:crypto's one-shot hashes) in this thread:
 * the pages an incremental backup checks one by one (4.5x hash-wasm's speed
 * on 4 KiB pages here). null where the threads' script is not beside this
 * module (a bundle that left it out): hash-wasm checks instead.
 */
export const nodePageMacs: PageMacs = async (algorithm, hmacKey, covered) => {
  macModule ??= import(WORKER_SCRIPT.href).then((m: MacModule) => m, () => null);
  const mac = await macModule;
  if (!mac) return null;
  const check = mac.pageMacCheck(algorithm, hmacKey, covered);
  return (bytes, at, skip, pgno) => check(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), at, skip, pgno);
};

interface Task {
  from: number;
  to: number;
  resolve(r: PageCheck): void;
  reject(e: Error): void;
  onProgress(bytes: number): void;
}

export function nodePageChecks(options: {
  minBytes?: number; threads?: number; rangeBytes?: number;
  /** The threads' script (tests give one that dies). */
  script?: URL;
} = {}): PageChecks {
  const minBytes = options.minBytes ?? 8 << 20;
  const rangeBytes = options.rangeBytes ?? 8 << 20;
  const threads = Math.max(1, Math.min(options.threads ?? os.availableParallelism?.() ?? os.cpus().length, 8));
  let pool: Worker[] = [];
  let booting: Worker | null = null; // the warm-up's thread that is starting
  let next = 0;
  const tasks = new Map<number, Task>();
  let idle: ReturnType<typeof setTimeout> | undefined;

  const spawn = (): Worker => {
    // No loader flags (a plain .mjs needs none; --import tsx would start a loader per thread). Small heaps: a thread's garbage is collected early instead of piling up (memory budget: README).
    const w = new Worker(options.script ?? WORKER_SCRIPT, { workerData: { cipherkeepPageCheck: true }, execArgv: [], resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 } });
    w.on('message', (m: { id: number; progress?: number; ok?: boolean; page?: number; error?: string }) => {
      const task = tasks.get(m.id);
      if (!task) return;
      if (m.progress !== undefined) return task.onProgress(m.progress);
      tasks.delete(m.id);
      if (m.error !== undefined) task.reject(new Error(`page check failed: ${m.error}`));
      else task.resolve(m.ok ? { ok: true, pages: task.to - task.from } : { ok: false, page: m.page! });
      settle();
    });
    w.on('error', (e) => failAll(e));
    // A thread gone (out of memory, terminated) answers none of its tasks: they fail rather than hang (the service then checks in-thread).
    w.on('exit', (code) => {
      if (pool.includes(w)) failAll(new Error(`page-check thread exited (${code})`));
    });
    return w;
  };
  /**
   * The pool, its missing threads started: all at once for a check; for a warm-up one at a time, each
   * once the one before is up. Starting a thread takes ~30 ms of a core; started together while the key
   * was derived, they took that core's time from it, and the check waits for the key.
   */
  const start = (now: boolean): Worker[] => {
    while (pool.length < threads && (now || !booting)) {
      const w = spawn();
      pool.push(w);
      if (!now) {
        booting = w;
        w.once('online', () => {
          if (booting !== w) return; // the pool has ended since (failAll)
          booting = null;
          start(false);
        });
      }
    }
    settle();
    return pool;
  };
  const failAll = (e: Error) => {
    for (const t of tasks.values()) t.reject(e);
    tasks.clear();
    const dead = pool;
    pool = [];
    booting = null;
    for (const w of dead) void w.terminate();
  };
  // Referenced while there is work (a pending check must keep the process alive), not while idle.
  const settle = () => {
    const busy = tasks.size > 0;
    for (const w of pool) (busy ? w.ref() : w.unref());
    if (idle) clearTimeout(idle);
    idle = undefined;
    if (!busy && pool.length) {
      idle = setTimeout(() => failAll(new Error('idle')), IDLE_MS);
      idle.unref?.();
    }
  };

  const check: PageChecks = async (path, key, settings, size, onBytes) => {
    // A plaintext-header file (no salt in it, page 1 covered from past the header) is left to page-check.ts, which knows that layout.
    if (size < minBytes || threads < 2 || settings.plaintextHeaderSize > 0) return null;
    const { pageSize, hmacAlgorithm, kdfAlgorithm } = settings;
    const pages = size / pageSize;
    const salt = await readSalt(path);
    const workers = start(true);
    let done = 0;
    const run = (w: Worker, from: number, to: number) => new Promise<PageCheck>((resolve, reject) => {
      const id = ++next;
      tasks.set(id, { from, to, resolve, reject, onProgress: (n) => onBytes?.((done += n)) });
      settle();
      w.postMessage({ id, path, key, salt, pageSize, hmacAlgorithm, kdfAlgorithm, from, to });
    });
    return checkInRanges(workers, pages, Math.max(1, Math.floor(rangeBytes / pageSize)), run);
  };
  // Starting the threads costs about a third of checking 100 MB on them: worth doing while the key is derived.
  check.warm = (size) => {
    if (size >= minBytes && threads >= 2) start(false);
  };
  return check;
}

async function readSalt(path: string): Promise<Uint8Array> {
  const { open } = await import('node:fs/promises');
  const handle = await open(path, 'r');
  try {
    const salt = new Uint8Array(16);
    await handle.read(salt, 0, 16, 0);
    return salt;
  } finally {
    await handle.close();
  }
}
