/**
 * An exclusive lock shared by every process on the machine, over plain files
 * (Node has no fcntl or flock; Deno's FsFile.lock is flock, which a Node
 * process cannot see, so both use this).
 *
 * The lock is a directory of numbered generation files. To take the lock a
 * process creates generation N+1, where N is the newest, once N is released
 * (an `N.released` marker beside it) or stale — created with O_EXCL, which
 * fails if the name exists, so of any number of processes racing for N+1
 * exactly one wins, stale takeover included. Nothing is renamed or deleted
 * to make room: a number once used is never free again. A winner then checks that
 * N+1 is still the newest (a waiter that read the directory long ago could
 * refill a pruned number) and backs off if not.
 *
 * Staleness: the holder refreshes its file's mtime; a generation whose holder
 * is a dead process on this host, or whose file has not been refreshed for
 * `staleMs`, may be taken over. A holder that was only paused (SIGSTOP, a
 * laptop lid) then finds a successor generation: `check()` throws
 * LockLostError, and the backup service calls it before every step that
 * changes what other processes see (rename into place, deletes).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import nodePath from 'node:path';
import { LockLostError, LockTimeoutError, MissingDirectoryError, StorageFullError } from '../engine/errors.ts';
import type { HeldLock } from './file-store.ts';

/** A lock not refreshed for this long is taken over (default). */
export const LOCK_STALE_MS = 60_000;

interface Holder {
  pid: number;
  host: string;
}

const errno = (e: unknown) => (e as NodeJS.ErrnoException)?.code;
const FULL = new Set(['ENOSPC', 'EDQUOT']);
const GENERATION = /^(\d{1,15})(\.released)?$/;
/** Generations kept for lookups by `mayBeAlive`; older ones are pruned. */
const KEEP_GENERATIONS = 16;

export async function acquireLockDir(dir: string, timeoutMs: number, staleMs = LOCK_STALE_MS): Promise<HeldLock> {
  if (!(await fs.stat(dir).catch(() => null))) {
    try {
      await fs.mkdir(dir, { mode: 0o700 });
    } catch (e) {
      if (errno(e) === 'ENOENT') throw new MissingDirectoryError(`directory does not exist: ${nodePath.dirname(dir)}`);
      if (errno(e) !== 'EEXIST') throw e;
    }
  }
  const me: Holder = { pid: process.pid, host: os.hostname() };
  const deadline = Date.now() + timeoutMs;
  for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
    const newest = await newestGeneration(dir);
    if (newest === 0 || (await isFree(dir, newest, staleMs))) {
      const mine = newest + 1;
      if (await publish(dir, mine, me)) {
        if ((await newestGeneration(dir)) === mine) return hold(dir, mine, staleMs);
        await release(dir, mine); // refilled a pruned number: not the newest, not ours
      }
      continue; // someone else moved first: look again at once
    }
    if (Date.now() >= deadline) throw new LockTimeoutError(`lock held by another process for ${timeoutMs} ms: ${dir}`);
    await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
  }
}

function hold(dir: string, generation: number, staleMs: number): HeldLock {
  const file = nodePath.join(dir, String(generation));
  let lost = false;
  const successor = async () => (await readGenerations(dir)).some((g) => g.n > generation);
  const heartbeat = setInterval(() => {
    void fs.utimes(file, new Date(), new Date()).catch(() => (lost = true));
  }, Math.max(50, Math.min(10_000, staleMs / 6)));
  (heartbeat as { unref?: () => void }).unref?.();
  void prune(dir, generation);
  return {
    token: String(generation),
    async check() {
      if (lost || (await successor())) {
        lost = true;
        throw new LockLostError(`another process took over the lock after this one stopped refreshing it for ${staleMs} ms: ${dir}`);
      }
    },
    async mayBeAlive(token) {
      const n = Number(token);
      if (!Number.isSafeInteger(n)) return false;
      if (n === generation) return true;
      const holder = await readHolder(dir, n);
      if (!holder || (await fs.stat(nodePath.join(dir, `${n}.released`)).catch(() => null))) return false; // it finished, or was pruned long ago
      if (holder.host === os.hostname()) return processAlive(holder.pid);
      const s = await fs.stat(nodePath.join(dir, String(n))).catch(() => null);
      return !!s && Date.now() - s.mtimeMs < staleMs;
    },
    async release() {
      clearInterval(heartbeat);
      await release(dir, generation);
    },
  };
}

async function readGenerations(dir: string): Promise<Array<{ n: number; released: boolean }>> {
  const names = await fs.readdir(dir).catch((e) => {
    if (errno(e) === 'ENOENT') return [] as string[];
    throw e;
  });
  return names.flatMap((name) => {
    const m = GENERATION.exec(name);
    return m ? [{ n: Number(m[1]), released: !!m[2] }] : [];
  });
}

async function newestGeneration(dir: string): Promise<number> {
  return Math.max(0, ...(await readGenerations(dir)).map((g) => g.n));
}

/** Whether generation `n` was released, or its holder is dead or stopped refreshing it. */
async function isFree(dir: string, n: number, staleMs: number): Promise<boolean> {
  const file = nodePath.join(dir, String(n));
  const [holder, s, released] = await Promise.all([readHolder(dir, n), fs.stat(file).catch(() => null), fs.stat(`${file}.released`).catch(() => null)]);
  if (released) return true;
  if (!s) return false; // pruned: look again
  // A holder not yet written (or never: its process died at once) is judged by the file's age alone.
  if (holder && holder.host === os.hostname() && !processAlive(holder.pid)) return true;
  return Date.now() - s.mtimeMs > staleMs;
}

async function readHolder(dir: string, n: number): Promise<Holder | null> {
  try {
    return JSON.parse(await fs.readFile(nodePath.join(dir, String(n)), 'utf8')) as Holder;
  } catch {
    return null;
  }
}

/**
 * Creates generation `n` (O_EXCL: fails if the name exists), or returns
 * false if it exists. Its holder is written after: a reader that finds it
 * empty looks again, or judges it by its age.
 */
async function publish(dir: string, n: number, me: Holder): Promise<boolean> {
  try {
    await fs.writeFile(nodePath.join(dir, String(n)), JSON.stringify(me), { flag: 'wx', mode: 0o600 });
    return true;
  } catch (e) {
    if (errno(e) === 'EEXIST') return false;
    if (FULL.has(errno(e) ?? '')) throw new StorageFullError(`no room for the lock file in ${dir}`, { cause: e });
    throw e;
  }
}

/**
 * Marks generation `n` released. Its own file stays: a generation's name is
 * never free again (until pruned far behind the newest), so link(2) can
 * never hand one number to two holders.
 */
async function release(dir: string, n: number): Promise<void> {
  await fs.writeFile(nodePath.join(dir, `${n}.released`), '', { mode: 0o600 });
}

/** Drops generations before the newest few. */
async function prune(dir: string, current: number): Promise<void> {
  try {
    for (const g of await readGenerations(dir)) {
      if (g.n < current - KEEP_GENERATIONS) await fs.rm(nodePath.join(dir, `${g.n}${g.released ? '.released' : ''}`), { force: true });
    }
  } catch {
    // best effort: leftovers are small and pruned next time
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errno(e) === 'EPERM';
  }
}
