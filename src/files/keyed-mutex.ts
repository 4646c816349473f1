/**
 * Exclusive locks by name within one JS realm, with a timeout. An entry lives
 * only while someone holds or waits for it, so the map never grows with the
 * number of names ever used (the reference's module-level dict did).
 */
import { LockTimeoutError } from '../engine/errors.ts';
import type { Release } from './file-store.ts';

interface Entry {
  held: boolean;
  waiters: Array<() => void>;
}

export class KeyedMutex {
  readonly #entries = new Map<string, Entry>();

  /** Number of names currently held or waited for (for tests and leak checks). */
  get size(): number {
    return this.#entries.size;
  }

  async acquire(key: string, timeoutMs = Infinity): Promise<Release> {
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = { held: false, waiters: [] };
      this.#entries.set(key, entry);
    }
    if (entry.held) {
      const e = entry;
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = Number.isFinite(timeoutMs)
          ? setTimeout(() => {
              e.waiters.splice(e.waiters.indexOf(wake), 1);
              reject(new LockTimeoutError(`lock busy for ${timeoutMs} ms: ${key}`));
            }, timeoutMs)
          : undefined;
        e.waiters.push(wake);
      });
    }
    entry.held = true;
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      const next = entry.waiters.shift();
      if (next) next();
      else this.#entries.delete(key);
    };
  }
}
