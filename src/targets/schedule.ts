/**
 * Runs a job (an off-site backup) every `everyMs`, remembering when it last
 * succeeded in a small store that survives restarts (idb-keyval in browsers,
 * so a reload does not reset the clock), checking due-ness on start and every
 * `checkEveryMs`. Never overlaps itself: one run at a time in this realm, and
 * across the origin's tabs and workers through a Web Lock where the runtime
 * has them. A failed run is recorded and reported, and tried again after
 * `retryAfterMs` rather than at once. Runtime-agnostic.
 */

export interface ScheduleStore {
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown): Promise<void>;
}

export interface ScheduleRecord {
  /** When the job last succeeded, ms since the epoch. */
  lastSuccessAt?: number;
  /** When the job was last started. */
  lastAttemptAt?: number;
  /** The last failure, kept until the next success. */
  lastError?: { code?: string; message: string; at: number };
  /** Failures since the last success. */
  failures: number;
}

export interface ScheduleOptions {
  /** How often the job should run (e.g. a day). */
  everyMs: number;
  job: () => Promise<unknown>;
  /** Where the record lives; default memory (lost on restart). Browsers: `{ get, set }` from idb-keyval. */
  store?: ScheduleStore;
  /** The record's key in the store; default 'cipherkeep:schedule:offsite'. Also names the Web Lock. */
  key?: string;
  /** How often to look whether the job is due; default the smaller of everyMs and one minute. */
  checkEveryMs?: number;
  /** After a failure, wait this long before trying again; default the smaller of everyMs and five minutes. */
  retryAfterMs?: number;
  /** After each run, with the new record (its lastError set, and the error given, when the job failed). */
  onRun?(record: ScheduleRecord, error?: unknown): void;
  /** When the schedule itself failed (the store could not be read or written); default: console.error. */
  onError?(error: unknown): void;
  now?: () => number;
}

export interface Schedule {
  /** Checks now, then every `checkEveryMs`, running the job when it is due. */
  start(): void;
  stop(): void;
  /** When the job is next due (ms since the epoch; now or earlier when it is due). */
  nextDueAt(): Promise<number>;
  /** Runs the job now (after any run already going); the record after it. */
  runNow(): Promise<ScheduleRecord>;
  /** Runs the job if it is due; the record after (unchanged when it was not due). */
  check(): Promise<ScheduleRecord>;
  record(): Promise<ScheduleRecord>;
}

type Locks = { request<T>(name: string, options: { ifAvailable: boolean }, fn: (lock: unknown) => Promise<T>): Promise<T> };

function memoryStore(): ScheduleStore {
  const m = new Map<string, unknown>();
  return { get: async <T>(k: string) => m.get(k) as T | undefined, set: async (k, v) => void m.set(k, v) };
}

export function createSchedule(options: ScheduleOptions): Schedule {
  const { everyMs, job } = options;
  if (!(everyMs > 0)) throw new RangeError(`everyMs must be positive, got ${everyMs}`);
  const store = options.store ?? memoryStore();
  const key = options.key ?? 'cipherkeep:schedule:offsite';
  const now = options.now ?? Date.now;
  const checkEveryMs = options.checkEveryMs ?? Math.min(everyMs, 60_000);
  const retryAfterMs = options.retryAfterMs ?? Math.min(everyMs, 5 * 60_000);
  let running: Promise<ScheduleRecord> | null = null;
  let timer: ReturnType<typeof setInterval> | null = null;

  const record = async (): Promise<ScheduleRecord> => ({ failures: 0, ...(await store.get<ScheduleRecord>(key)) });
  const dueAt = (r: ScheduleRecord) => {
    const next = r.lastSuccessAt === undefined ? -Infinity : r.lastSuccessAt + everyMs;
    // A recent failure holds the next try back, so a broken target is not hammered.
    return r.failures > 0 && r.lastAttemptAt !== undefined ? Math.max(next, r.lastAttemptAt + retryAfterMs) : next;
  };

  const runOnce = async (onlyIfDue: boolean): Promise<ScheduleRecord> => {
    const before = await record(); // read again under the lock: another tab may just have run it
    if (onlyIfDue && dueAt(before) > now()) return before;
    const started = now();
    await store.set(key, { ...before, lastAttemptAt: started });
    let after: ScheduleRecord;
    let error: unknown;
    try {
      await job();
      after = { lastSuccessAt: started, lastAttemptAt: started, failures: 0 };
    } catch (e) {
      error = e;
      const message = e instanceof Error ? e.message : String(e);
      after = { ...before, lastAttemptAt: started, failures: before.failures + 1, lastError: { code: (e as { code?: string })?.code, message, at: now() } };
    }
    await store.set(key, after);
    options.onRun?.(after, error);
    return after;
  };

  // A due-check during a run waits for that run (and sees its record).
  const exclusive = (onlyIfDue: boolean): Promise<ScheduleRecord> => {
    running ??= (async () => {
      const locks = (globalThis as { navigator?: { locks?: Locks } }).navigator?.locks;
      // Another tab holding the lock is running it now: not due here.
      if (locks) return locks.request(key, { ifAvailable: true }, (lock) => (lock ? runOnce(onlyIfDue) : record()));
      return runOnce(onlyIfDue);
    })().finally(() => (running = null));
    return running;
  };

  const tick = () => void exclusive(true).catch(options.onError ?? ((e) => console.error('cipherkeep schedule:', e)));

  return {
    start() {
      if (timer) return;
      tick();
      timer = setInterval(tick, checkEveryMs);
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
    },
    nextDueAt: async () => dueAt(await record()),
    async runNow() {
      while (running) await running.catch(() => {});
      return exclusive(false);
    },
    check: () => exclusive(true),
    record,
  };
}
