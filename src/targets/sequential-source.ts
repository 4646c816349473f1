/**
 * A `BackupTarget.put` source over bytes that arrive in order (a backup read
 * as chunks, a stream): targets ask for consecutive ranges, so the chunks
 * are re-cut to the lengths asked for without holding more than one chunk
 * and one range. Asking out of order is a bug in the caller, and says so.
 */
import { InternalError } from '../engine/errors.ts';

export function sequentialSource(chunks: AsyncIterator<Uint8Array>): (offset: number, length: number) => Promise<Uint8Array> {
  let at = 0;
  let held: Uint8Array = new Uint8Array(0);
  return async (offset, length) => {
    if (offset !== at) throw new InternalError(`a sequential source was asked for offset ${offset}, expected ${at}`);
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      if (held.length === 0) {
        const next = await chunks.next();
        if (next.done) break; // short: the target refuses a source that gives fewer bytes than it said
        held = next.value;
      }
      const n = Math.min(held.length, length - filled);
      out.set(held.subarray(0, n), filled);
      held = held.subarray(n);
      filled += n;
    }
    at += filled;
    return filled === length ? out : out.slice(0, filled);
  };
}
