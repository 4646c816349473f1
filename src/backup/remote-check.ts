/**
 * Checking a backup where it lies on a target, without downloading it
 * whole: ranged reads through a bounded buffer, every page's HMAC under the
 * key (checkPageHmacs), the salt and the size.
 */
import { resolveSettings, SALT_BYTES } from '../engine/cipher.ts';
import type { KeyProfile } from './key-profiles.ts';
import type { BackupTarget } from '../targets/target.ts';
import { checkPageHmacs } from './page-check.ts';
import { sameIdentity } from './catalog.ts';

export type RemoteCheck = { ok: true } | { ok: false; detail: string };

/** Bytes asked of the store at once: its cost is per request (Swift: 4 MiB ranges took about twice the time of 16 MiB ones). */
const RANGE_BYTES = 8 << 20;

/**
 * `into` filled from the object at `offset`; the count read. The object is
 * fetched in ranges of RANGE_BYTES; with `readAhead` the next range is on its
 * way while this one is checked (reads are sequential, as checkPageHmacs
 * makes them), so memory stays at two ranges.
 */
function readerOf(target: BackupTarget, name: string, readAhead: boolean, range = RANGE_BYTES) {
  let cur: { offset: number; bytes: Uint8Array } = { offset: 0, bytes: new Uint8Array(0) };
  let next: { offset: number; bytes: Promise<Uint8Array> } | null = null;
  const fetchAt = (offset: number) => {
    const bytes = target.read(name, offset, range);
    bytes.catch(() => {}); // a failure surfaces when (if) that range is asked for
    return { offset, bytes };
  };
  return async (offset: number, into: Uint8Array): Promise<number> => {
    let filled = 0;
    while (filled < into.length) {
      const at = offset + filled;
      if (at < cur.offset || at >= cur.offset + cur.bytes.length) {
        const pending = next && next.offset === at ? next : fetchAt(at);
        next = null;
        cur = { offset: at, bytes: await pending.bytes };
        if (cur.bytes.length === 0) break; // the end
        if (readAhead && cur.bytes.length === range) next = fetchAt(at + range);
      }
      const part = cur.bytes.subarray(at - cur.offset, at - cur.offset + into.length - filled);
      into.set(part, filled);
      filled += part.length;
    }
    return filled;
  };
}

/**
 * The object `name` holds `size` bytes starting with `salt`, and every page
 * carries the HMAC made with `rawKey`. Reads every byte once, in ranges.
 */
export async function checkRemote(
  target: BackupTarget, name: string, size: number, salt: Uint8Array, rawKey: Uint8Array, profile: KeyProfile,
  onBytes?: (done: number) => void,
): Promise<RemoteCheck> {
  const info = await target.stat(name);
  if (!info) return { ok: false, detail: `${name} is not on ${target.id} after the upload` };
  if (info.size !== size) return { ok: false, detail: `${name} on ${target.id} holds ${info.size} bytes, expected ${size}` };
  const head = await target.read(name, 0, SALT_BYTES);
  if (!sameIdentity(head, salt)) return { ok: false, detail: `${name} on ${target.id} does not start with the database's salt` };
  const settings = resolveSettings(profile.cipher);
  if (size % settings.pageSize !== 0) return { ok: false, detail: `${size} bytes is not a whole number of pages` };
  const pages = await checkPageHmacs(readerOf(target, name, true), size, rawKey, settings, onBytes);
  return pages.ok ? { ok: true } : { ok: false, detail: `page ${pages.page} of ${name} on ${target.id} failed its HMAC check` };
}

/** Whether page 1 of the object carries the HMAC made with `rawKey`: false for a backup under another password. */
export async function readableWith(target: BackupTarget, name: string, rawKey: Uint8Array, profile: KeyProfile): Promise<boolean> {
  const settings = resolveSettings(profile.cipher);
  const page = await checkPageHmacs(readerOf(target, name, false, settings.pageSize), settings.pageSize, rawKey, settings).catch(() => ({ ok: false }));
  return page.ok;
}
