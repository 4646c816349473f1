/**
 * The off-site schedule (src/targets/schedule.ts), runtime-agnostic: due-ness
 * from the stored time (so a restart does not reset it), never two runs at
 * once, failures recorded, reported and retried later, the interval; and
 * the sequential source that feeds a target from chunks in order.
 * (In Chromium, test/browser/offsite.spec.ts runs it over IndexedDB across a reload.)
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import { createSchedule, sequentialSource, type ScheduleRecord, type ScheduleStore, TargetUnreachableError, InternalError } from '../src/index.ts';

const HOUR = 3600_000;

function sharedStore(): ScheduleStore & { data: Map<string, unknown> } {
  const data = new Map<string, unknown>();
  // Structured-clone-like: what comes back is a copy, as from IndexedDB.
  return { data, get: async <T>(k: string) => (data.has(k) ? structuredClone(data.get(k)) as T : undefined), set: async (k, v) => void data.set(k, structuredClone(v)) };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('createSchedule', () => {
  it('runs at once when it never ran, then not again until everyMs after its last success, as a new instance (a reload) sees it', { timeout: 10_000 }, async () => {
    const store = sharedStore();
    let clock = 1_000_000;
    let runs = 0;
    const make = () => createSchedule({ everyMs: HOUR, job: async () => void runs++, store, now: () => clock });
    const first = make();
    assert.equal(await first.nextDueAt(), -Infinity);
    const r = await first.check();
    assert.equal(runs, 1);
    assert.equal(r.lastSuccessAt, 1_000_000);
    clock += HOUR - 1;
    const reloaded = make();
    assert.equal(await reloaded.nextDueAt(), 1_000_000 + HOUR);
    await reloaded.check();
    assert.equal(runs, 1, 'not due a millisecond early');
    clock += 1;
    assert.equal((await reloaded.check()).lastSuccessAt, 1_000_000 + HOUR);
    assert.equal(runs, 2);
  });

  it('never overlaps itself: checks during a run wait for it and do not run again; runNow runs after it', { timeout: 10_000 }, async () => {
    let running = 0;
    let most = 0;
    let runs = 0;
    let release!: () => void;
    const s = createSchedule({
      everyMs: HOUR,
      job: async () => {
        runs++;
        most = Math.max(most, ++running);
        await new Promise<void>((r) => (release = r));
        running--;
      },
    });
    const checks = [s.check(), s.check(), s.check()];
    const now = s.runNow();
    await tick();
    assert.equal(runs, 1);
    release();
    const records = await Promise.all(checks);
    assert.ok(records.every((r) => r.lastSuccessAt === records[0]!.lastSuccessAt));
    await tick();
    assert.equal(runs, 2, 'runNow ran after the first run ended');
    release();
    await now;
    assert.equal(most, 1, 'never two at once');
  });

  it('a failure is recorded and reported, held back for retryAfterMs, and cleared by the next success', { timeout: 10_000 }, async () => {
    let clock = 5_000_000;
    let fail = true;
    let runs = 0;
    const reported: Array<[ScheduleRecord, unknown]> = [];
    const s = createSchedule({
      everyMs: HOUR, retryAfterMs: 60_000, now: () => clock, onRun: (r, e) => void reported.push([r, e]),
      job: async () => {
        runs++;
        if (fail) throw new TargetUnreachableError('folder:x: put: gone');
      },
    });
    const failed = await s.check();
    assert.equal(failed.failures, 1);
    assert.equal(failed.lastSuccessAt, undefined);
    assert.deepEqual(failed.lastError, { code: 'TARGET_UNREACHABLE', message: 'folder:x: put: gone', at: 5_000_000 });
    assert.ok(reported[0]![1] instanceof TargetUnreachableError);
    clock += 59_999;
    await s.check();
    assert.equal(runs, 1, 'not retried before retryAfterMs');
    clock += 1;
    await s.check();
    assert.equal(runs, 2);
    assert.equal((await s.record()).failures, 2);
    fail = false;
    clock += 60_000;
    const ok = await s.check();
    assert.deepEqual(ok, { lastSuccessAt: clock, lastAttemptAt: clock, failures: 0 });
    assert.equal(reported.length, 3);
    assert.equal(reported[2]![1], undefined);
  });

  it('start() checks at once and on the interval; stop() stops it; a failing store is reported, not thrown', { timeout: 10_000 }, async () => {
    let runs = 0;
    const s = createSchedule({ everyMs: 30, checkEveryMs: 10, job: async () => void runs++ });
    s.start();
    s.start(); // idempotent
    await tick();
    assert.equal(runs, 1, 'ran on start');
    await new Promise((r) => setTimeout(r, 200));
    s.stop();
    const seen = runs;
    assert.ok(seen >= 3 && seen <= 8, `ran ${seen} times in 200 ms at every 30 ms`);
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(runs, seen, 'nothing after stop');

    const errors: unknown[] = [];
    const broken = createSchedule({
      everyMs: HOUR, job: async () => void runs++, onError: (e) => void errors.push(e),
      store: { get: async () => { throw new Error('IndexedDB is gone'); }, set: async () => {} },
    });
    broken.start();
    await tick(); await tick();
    broken.stop();
    assert.equal((errors[0] as Error)?.message, 'IndexedDB is gone');
  });

  it('refuses a non-positive period', { timeout: 10_000 }, () => {
    assert.throws(() => createSchedule({ everyMs: 0, job: async () => {} }), RangeError);
  });
});

describe('sequentialSource', () => {
  async function* chunks(sizes: number[]) {
    let v = 0;
    for (const n of sizes) yield Uint8Array.from({ length: n }, () => v++ & 255);
  }

  it('re-cuts chunks to the ranges asked for, short at the end, and refuses a range out of order', { timeout: 10_000 }, async () => {
    const src = sequentialSource(chunks([3, 1, 7, 2])[Symbol.asyncIterator]());
    assert.deepEqual([...await src(0, 5)], [0, 1, 2, 3, 4]);
    assert.deepEqual([...await src(5, 4)], [5, 6, 7, 8]);
    assert.deepEqual([...await src(9, 10)], [9, 10, 11, 12]);
    await assert.rejects(src(0, 1), InternalError);
  });
});
