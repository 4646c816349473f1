/**
 * The FileStore contract for reads: `read`, `readInto` (which fills the
 * caller's buffer), `copyPrefix` and `openReader` where a store has them, the same on every store — memory and the Node/Deno
 * filesystem (test/file-store.test.ts), OPFS in a worker in Chromium
 * (test/browser/file-store.spec.ts). Written without node:assert so the same
 * cases run in a browser worker: each returns what it found, and the runner
 * of each environment asserts there are no failures.
 */
import type { FileStore } from '../../src/files/file-store.ts';

export interface CaseResult {
  name: string;
  /** Empty when the case passed. */
  failures: string[];
}

function pattern(n: number, seed = 7): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) out[i] = x = (x * 1103515245 + 12345) >>> 16 & 0xff;
  return out;
}

async function write(files: FileStore, path: string, bytes: Uint8Array): Promise<void> {
  const w = await files.create(path);
  for (let i = 0; i < bytes.length; i += 1 << 20) await w.write(bytes.subarray(i, i + (1 << 20)));
  await w.close();
}

/** Runs every case in `dir` (a fresh, existing directory); the store must implement readInto. */
export async function fileStoreReadCases(files: FileStore, dir: string): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  const data = pattern(3 * 1024 * 1024 + 123);
  const path = files.join(dir, 'data.bin');
  await write(files, path, data);
  const run = async (name: string, body: (fail: (m: string) => void) => Promise<void>) => {
    const failures: string[] = [];
    try {
      await body((m) => failures.push(m));
    } catch (e) {
      failures.push(`threw ${(e as Error).name}: ${(e as Error).message}`);
    }
    results.push({ name, failures });
  };
  const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
  const readInto = files.readInto?.bind(files);

  await run('the store has readInto', async (fail) => {
    if (typeof readInto !== 'function') fail('no readInto');
  });
  if (typeof readInto !== 'function') return results;

  await run('read and readInto return the same bytes: whole, ranges, across 1 MiB boundaries', async (fail) => {
    for (const [offset, length] of [[0, data.length], [0, 16], [4096, 4096], [(1 << 20) - 100, 300], [data.length - 50, 50], [12345, 2 * 1024 * 1024]] as const) {
      const into = new Uint8Array(length);
      const n = await readInto(path, offset, into);
      const want = data.subarray(offset, offset + length);
      if (n !== want.length || !same(into.subarray(0, n), want)) fail(`readInto at ${offset} (${length}): ${n} bytes, ${same(into.subarray(0, n), want) ? 'same' : 'different'} bytes`);
      if (!same(await files.read(path, offset, length), want)) fail(`read at ${offset} (${length}) differs`);
    }
  });

  await run('readInto past the end: fewer bytes, the rest of the buffer untouched', async (fail) => {
    const into = new Uint8Array(1000).fill(0xee);
    const n = await readInto(path, data.length - 100, into);
    if (n !== 100) fail(`${n} bytes, not 100`);
    if (!same(into.subarray(0, 100), data.subarray(data.length - 100))) fail('wrong bytes');
    if (!into.subarray(100).every((b) => b === 0xee)) fail('bytes past the end were written');
    if ((await readInto(path, data.length + 10, into)) !== 0) fail('a read from past the end returned bytes');
    if ((await readInto(path, 5, new Uint8Array(0))) !== 0) fail('a zero-length read returned bytes');
  });

  await run('readInto fills a view inside a larger buffer, touches nothing else, and leaves the buffer attached', async (fail) => {
    const big = new Uint8Array(10_000).fill(0xaa);
    const view = big.subarray(1000, 5000);
    const n = await readInto(path, 777, view);
    if (n !== 4000 || !same(view, data.subarray(777, 4777))) fail('the view holds the wrong bytes');
    if (big.buffer.byteLength !== 10_000) fail('the buffer was detached or resized');
    if (!big.subarray(0, 1000).every((b) => b === 0xaa) || !big.subarray(5000).every((b) => b === 0xaa)) fail('bytes outside the view were written');
  });

  await run('concurrent readInto of one file and of two files all land', async (fail) => {
    const other = files.join(dir, 'other.bin');
    const otherData = pattern(512 * 1024, 99);
    await write(files, other, otherData);
    const reads = Array.from({ length: 8 }, (_, i) => ({ p: i % 2 ? other : path, offset: i * 4096, into: new Uint8Array(64 * 1024) }));
    const counts = await Promise.all(reads.map((r) => readInto(r.p, r.offset, r.into)));
    reads.forEach((r, i) => {
      const want = (r.p === path ? data : otherData).subarray(r.offset, r.offset + r.into.length);
      if (counts[i] !== want.length || !same(r.into, want)) fail(`read ${i} wrong`);
    });
  });

  await run('readInto of a missing file rejects with the store\'s not-found error', async (fail) => {
    let threw = false;
    try {
      await readInto(files.join(dir, 'no-such.bin'), 0, new Uint8Array(10));
    } catch (e) {
      const code = (e as { code?: string }).code;
      const name = (e as { name?: string }).name;
      threw = code === 'ENOENT' || name === 'NotFoundError';
      if (!threw) fail(`rejected with ${name} ${code}, not a not-found error`);
      threw = true;
    }
    if (!threw) fail('resolved');
  });

  // The snapshot's fast path (snapshot.ts): Node's returns before its fsync is done, with `durable`; OPFS's once flushed.
  await run('copyPrefix, where the store has it: the new file holds the first bytes once it resolves; `durable` resolves; an existing file is refused and kept', async (fail) => {
    if (!files.copyPrefix) return;
    const copy = files.join(dir, 'prefix.bin');
    const length = 2 * 1024 * 1024 + 4096;
    const done = await files.copyPrefix(path, copy, length);
    if (!same(await files.read(copy, 0, length + 10), data.subarray(0, length))) fail('the copy is not the first bytes');
    await done?.durable;
    let refused = false;
    try {
      await files.copyPrefix(copy, path, 10);
    } catch {
      refused = true;
    }
    if (!refused) fail('a copy onto an existing file was not refused');
    if (!same(await files.read(path, 0, data.length), data)) fail('the existing file was changed');
  });

  // The page store's read of a live database in place (src/backup/incremental.ts): many small reads, one opening.
  await run('openReader, where the store has it: its reads are readInto\'s, into the caller\'s buffer; after close, none', async (fail) => {
    if (!files.openReader) return;
    const reader = await files.openReader(path);
    try {
      for (const [offset, length] of [[0, 4096], [4096 * 300 + 17, 9000], [data.length - 100, 4096], [(1 << 20) - 5, 10]] as const) {
        const into = new Uint8Array(length);
        const n = await reader.read(offset, into);
        const want = data.subarray(offset, offset + length);
        if (n !== want.length || !same(into.subarray(0, n), want)) fail(`read at ${offset} (${length}): ${n} bytes`);
      }
    } finally {
      await reader.close();
    }
    let refused = false;
    try {
      await reader.read(0, new Uint8Array(10));
    } catch {
      refused = true;
    }
    if (!refused) fail('a read after close was answered');
  });
  return results;
}
