/**
 * Writing a stream we do not control (an upload, a download from another
 * device) into a new file, with bounds: it can be cancelled, it fails when
 * the source stalls, it stops before the disk is full, and it lets the event
 * loop turn (a source that never yields would starve the lock's heartbeat).
 */
import { AbortedError, StorageFullError } from '../engine/errors.ts';
import type { FileStore } from '../files/file-store.ts';

export interface IntakeOptions {
  signal?: AbortSignal;
  /** Fail when the source gives nothing for this long (default 60 s). */
  stallTimeoutMs?: number;
  /** Called after each chunk with the bytes written so far. */
  onBytes?: (done: number) => void | Promise<void>;
}

/** Free space is looked at again after this many bytes; the rule is twice what is still to come. */
const CHECK_EVERY = 8 << 20;

export async function writeStream(files: FileStore, path: string, source: AsyncIterable<Uint8Array>, options: IntakeOptions = {}): Promise<number> {
  const { signal, stallTimeoutMs = 60_000 } = options;
  if (signal?.aborted) throw new AbortedError('import cancelled before it began', { cause: signal.reason });
  const writer = await files.create(path);
  const iterator = source[Symbol.asyncIterator]();
  let done = 0;
  let checkedAt = -CHECK_EVERY;
  let yieldedAt = Date.now();
  try {
    for (;;) {
      signal?.throwIfAborted();
      const next = await nextOrStall(iterator, stallTimeoutMs, signal);
      if (next.done) break;
      if (done - checkedAt >= CHECK_EVERY) {
        checkedAt = done;
        const free = await files.freeSpace(files.dirname(path));
        if (free < 2 * CHECK_EVERY) throw new StorageFullError(`stopped importing at ${done} bytes: ${free} bytes free in ${files.dirname(path)}`);
      }
      await writer.write(next.value);
      done += next.value.length;
      await options.onBytes?.(done);
      if (Date.now() - yieldedAt > 50) {
        await new Promise((r) => setTimeout(r, 0));
        yieldedAt = Date.now();
      }
    }
    await writer.close();
    return done;
  } catch (e) {
    await writer.abort();
    // Not awaited: a generator stuck in an await would never answer.
    void iterator.return?.()?.catch(() => {});
    throw signal?.aborted ? new AbortedError(`import cancelled after ${done} bytes`, { cause: e }) : e;
  }
}

function nextOrStall<T>(iterator: AsyncIterator<T>, ms: number, signal?: AbortSignal): Promise<IteratorResult<T>> {
  return new Promise((resolve, reject) => {
    const onAbort = () => finish(() => reject(new AbortedError('import cancelled')));
    const timer = setTimeout(() => finish(() => reject(new AbortedError(`the source gave nothing for ${ms} ms`))), ms);
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      settle();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    iterator.next().then((r) => finish(() => resolve(r)), (e) => finish(() => reject(e)));
  });
}
