/**
 * What every BackupTarget must do, as plain async cases with their own
 * checks (no node:* imports): the Node and Deno suites wrap each case in
 * `it`, and the browser suite runs the same cases inside a page.
 */
import type { BackupTarget } from '../../src/targets/target.ts';

export interface TargetContractEnv {
  /** A fresh, empty target (its own prefix or directory). */
  fresh(): Promise<BackupTarget>;
  /** A size that takes the target's large path (multipart on S3), more than two parts' worth. */
  largeSize: number;
}

export interface TargetCase {
  name: string;
  run(env: TargetContractEnv): Promise<void>;
}

function check(ok: unknown, message: string): asserts ok {
  if (!ok) throw new Error(`contract: ${message}`);
}

function sameBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  check(a.length === b.length, `${what}: ${a.length} bytes, expected ${b.length}`);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) throw new Error(`contract: ${what}: differs at byte ${i}`);
}

async function rejectsWith(p: Promise<unknown>, code: string, what: string): Promise<Error> {
  try {
    await p;
  } catch (e) {
    check((e as { code?: string }).code === code, `${what}: expected ${code}, got ${(e as { code?: string }).code} ${(e as Error).message}`);
    return e as Error;
  }
  throw new Error(`contract: ${what}: resolved, expected ${code}`);
}

/** Pseudo-random bytes (cheap, deterministic per seed, not all alike). */
export function patternBytes(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    out[i] = x & 255;
  }
  return out;
}

export const sourceOf = (bytes: Uint8Array) => async (offset: number, length: number) => bytes.slice(offset, offset + length);

export const targetCases: TargetCase[] = [
  {
    name: 'a small object reads back whole, in ranges, short at the end and empty past it',
    async run(env) {
      const t = await env.fresh();
      const data = patternBytes(1000, 7);
      await t.put('small.db', data.length, sourceOf(data));
      sameBytes(await t.read('small.db', 0, 1000), data, 'whole');
      sameBytes(await t.read('small.db', 100, 50), data.subarray(100, 150), 'range');
      sameBytes(await t.read('small.db', 990, 50), data.subarray(990), 'end');
      sameBytes(await t.read('small.db', 1000, 10), new Uint8Array(0), 'past the end');
      sameBytes(await t.read('small.db', 5, 0), new Uint8Array(0), 'zero length');
    },
  },
  {
    name: 'an empty object exists with size 0',
    async run(env) {
      const t = await env.fresh();
      await t.put('empty.db', 0, sourceOf(new Uint8Array(0)));
      check((await t.stat('empty.db'))?.size === 0, 'stat size 0');
      sameBytes(await t.read('empty.db', 0, 10), new Uint8Array(0), 'read');
    },
  },
  {
    name: 'a large object goes up in parts, reports progress, and reads back across part boundaries',
    async run(env) {
      const t = await env.fresh();
      const data = patternBytes(env.largeSize, 11);
      const progress: number[] = [];
      let maxAsked = 0;
      await t.put('large.db', data.length, async (o, l) => {
        maxAsked = Math.max(maxAsked, l);
        return data.slice(o, o + l);
      }, (d) => progress.push(d));
      check(maxAsked < data.length, `the source was asked for ${maxAsked} bytes at once: not bounded`);
      check(progress.length > 1 && progress.every((d, i) => i === 0 || d >= progress[i - 1]!), `progress ${progress.join(',')}`);
      check(progress.at(-1) === data.length, 'progress ends at the size');
      check((await t.stat('large.db'))?.size === data.length, 'stat size');
      for (const at of [0, maxAsked - 3, 2 * maxAsked - 3, data.length - 10]) {
        sameBytes(await t.read('large.db', at, 10), data.subarray(at, at + 10), `range at ${at}`);
      }
      sameBytes(await t.read('large.db', 0, data.length), data, 'whole');
    },
  },
  {
    name: 'list finds objects by name prefix, in name order, across pages',
    async run(env) {
      const t = await env.fresh();
      const names = ['b-3', 'b-0', 'b-6', 'b-1', 'b-5', 'b-2', 'b-4'];
      await Promise.all(names.map((n, i) => t.put(n, i + 1, sourceOf(patternBytes(i + 1, i + 1)))));
      await t.put('other', 3, sourceOf(patternBytes(3)));
      const listed = await t.list('b-');
      check(JSON.stringify(listed.map((o) => o.name)) === JSON.stringify([...names].sort()), `names ${listed.map((o) => o.name)}`);
      check(listed.every((o) => o.size === names.indexOf(o.name) + 1), 'sizes');
      check((await t.list('')).length === 8, 'all');
      check((await t.list('zzz')).length === 0, 'none');
    },
  },
  {
    name: 'stat gives size and a current mtime, and null for a missing name',
    async run(env) {
      const t = await env.fresh();
      const before = Date.now();
      await t.put('s.db', 42, sourceOf(patternBytes(42)));
      const s = await t.stat('s.db');
      check(s?.name === 's.db' && s.size === 42, `stat ${JSON.stringify(s)}`);
      check(Math.abs(s.mtimeMs - before) < 5 * 60_000, `mtime ${s.mtimeMs} vs now ${before}`);
      check((await t.stat('missing.db')) === null, 'missing is null');
    },
  },
  {
    name: 'remove deletes once (true), then reports it gone (false); stat, list and read agree',
    async run(env) {
      const t = await env.fresh();
      await t.put('r.db', 10, sourceOf(patternBytes(10)));
      check((await t.remove('r.db')) === true, 'first remove');
      check((await t.remove('r.db')) === false, 'second remove');
      check((await t.stat('r.db')) === null, 'stat after remove');
      check((await t.list('r')).length === 0, 'list after remove');
      await rejectsWith(t.read('r.db', 0, 10), 'TARGET_NOT_FOUND', 'read after remove');
    },
  },
  {
    name: 'a put whose source fails midway leaves nothing under the name',
    async run(env) {
      const t = await env.fresh();
      const data = patternBytes(env.largeSize, 3);
      const boom = new Error('source failed');
      let calls = 0;
      let rejected: unknown = null;
      await t.put('partial.db', data.length, async (o, l) => {
        if (calls++ >= 1) throw boom;
        return data.slice(o, o + l);
      }).catch((e) => (rejected = e));
      check(rejected === boom, `the put rejects with the source's error, got ${String(rejected)}`);
      check((await t.stat('partial.db')) === null, 'no object after a failed large put');
      check((await t.list('partial')).length === 0, 'nothing listed');
      await t.put('partial.db', 5, async () => { throw boom; }).catch(() => {});
      check((await t.stat('partial.db')) === null, 'no object after a failed small put');
    },
  },
  {
    name: 'a put that fails over an existing object leaves the old one whole',
    async run(env) {
      const t = await env.fresh();
      const old = patternBytes(1000, 5);
      await t.put('kept.db', old.length, sourceOf(old));
      const boom = new Error('source failed');
      for (const size of [5, env.largeSize]) {
        let calls = 0;
        const data = patternBytes(size, 6);
        await t.put('kept.db', size, async (o, l) => {
          if (calls++ >= 1 || size === 5) throw boom;
          return data.slice(o, o + l);
        }).then(() => check(false, `the failed put of ${size} bytes resolved`), (e) => check(e === boom, `the put of ${size} bytes rejects with the source's error, got ${String(e)}`));
        check((await t.stat('kept.db'))?.size === old.length, `the old object is still there after a failed put of ${size} bytes`);
        sameBytes(await t.read('kept.db', 0, old.length), old, `the old object is whole after a failed put of ${size} bytes`);
      }
    },
  },
  {
    name: 'a source that returns the wrong number of bytes is refused and leaves nothing',
    async run(env) {
      const t = await env.fresh();
      await rejectsWith(t.put('short.db', 100, async () => new Uint8Array(99)), 'INVALID_ARGUMENT', 'short source');
      check((await t.stat('short.db')) === null, 'nothing stored');
    },
  },
  {
    name: 'names with spaces, punctuation and non-ASCII round-trip through put, stat, list, read and remove',
    async run(env) {
      const t = await env.fresh();
      const name = "odd name+(1)!'*~=&;,%20é€.db";
      const data = patternBytes(77, 4);
      await t.put(name, data.length, sourceOf(data));
      check((await t.stat(name))?.size === 77, 'stat');
      check((await t.list('odd'))[0]?.name === name, 'list');
      sameBytes(await t.read(name, 0, 77), data, 'read');
      check((await t.remove(name)) === true, 'remove');
    },
  },
  {
    name: 'names must be single path segments',
    async run(env) {
      const t = await env.fresh();
      for (const bad of ['', '.', '..', 'a/b', 'x\u0000y']) {
        await rejectsWith(t.put(bad, 1, sourceOf(new Uint8Array(1))), 'INVALID_ARGUMENT', `put ${JSON.stringify(bad)}`);
        await rejectsWith(t.stat(bad), 'INVALID_ARGUMENT', `stat ${JSON.stringify(bad)}`);
      }
    },
  },
];
