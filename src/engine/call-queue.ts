/**
 * Runs a connection's calls one at a time, in order — and keeps a call made
 * from inside the connection's own transaction callback from waiting
 * forever for the transaction that waits for it.
 *
 * Without async context (none in browsers) a call cannot say where it comes
 * from, so two rules instead:
 * - A call made while the callback's synchronous part runs can only come
 *   from the callback (nothing else runs then): it fails at once with
 *   DeadlockError. That is the natural first attempt,
 *   `db.transaction(async () => { await db.run(…) })`.
 * - Any other call waits for the transaction, as calls always have. But if
 *   it has waited `idleLimitMs` while the transaction did nothing (no
 *   statement on `tx` running or started), it fails with BusyError naming
 *   `tx`: it is either the callback's own call after an `await`, or a
 *   caller held up by a transaction that sits idle — no different from
 *   another connection holding the lock past the busy timeout.
 * So a call never hangs, and callers who only wait their turn are not
 * failed while the transaction works.
 */
import { BusyError, DeadlockError } from './errors.ts';

interface Waiter {
  since: number;
  fail(e: Error): void;
}

export class CallQueue {
  #tail: Promise<unknown> = Promise.resolve();
  #inCallbackSync = false;
  #tx: { lastActive: number; running: number } | null = null;
  readonly #waiting = new Set<Waiter>();
  #watchdog: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly idleLimitMs: number) {}

  /** Runs `fn` once every call queued before it has finished. */
  enqueue<T>(fn: () => Promise<T>, what: string): Promise<T> {
    if (this.#inCallbackSync) {
      return Promise.reject(new DeadlockError(
        `${what} was called on the Database inside its own transaction() callback, which would wait forever: ` +
          'use the callback\'s tx argument (tx.run, tx.query, tx.exec)',
      ));
    }
    let cancelled = false;
    let failWait!: (e: Error) => void;
    const waitFailed = new Promise<never>((_, reject) => (failWait = reject));
    const waiter: Waiter = { since: Date.now(), fail: (e) => ((cancelled = true), failWait(e)) };
    this.#waiting.add(waiter);
    const turn = this.#tail.then(() => {
      this.#waiting.delete(waiter);
      return cancelled ? (undefined as T) : fn();
    });
    this.#tail = turn.catch(() => {});
    this.#arm();
    return Promise.race([turn, waitFailed]);
  }

  /** Runs a transaction's callback, noting when it runs synchronously and when it is active. */
  async runCallback<T>(callback: () => Promise<T>): Promise<T> {
    this.#tx = { lastActive: Date.now(), running: 0 };
    try {
      let pending: Promise<T>;
      this.#inCallbackSync = true;
      try {
        pending = callback();
      } finally {
        this.#inCallbackSync = false;
      }
      return await pending;
    } finally {
      this.#tx = null;
      clearTimeout(this.#watchdog);
      this.#watchdog = undefined;
    }
  }

  /** Brackets one statement the transaction runs on `tx`: the transaction is busy, not idle. */
  async active<T>(fn: () => Promise<T>): Promise<T> {
    const tx = this.#tx;
    if (tx) (tx.running++, (tx.lastActive = Date.now()));
    try {
      return await fn();
    } finally {
      if (tx) (tx.running--, (tx.lastActive = Date.now()));
    }
  }

  // While a transaction's callback runs and calls wait, check now and then
  // whether the transaction has sat idle for long enough to fail them.
  #arm(): void {
    if (!this.#tx || this.#watchdog !== undefined || this.#waiting.size === 0) return;
    const check = () => {
      this.#watchdog = undefined;
      const tx = this.#tx;
      if (!tx || this.#waiting.size === 0) return;
      const now = Date.now();
      let next = this.idleLimitMs;
      if (tx.running === 0) {
        for (const w of [...this.#waiting]) {
          const waited = Math.min(now - w.since, now - tx.lastActive);
          if (waited >= this.idleLimitMs) {
            this.#waiting.delete(w);
            w.fail(new BusyError(
              `waited ${this.idleLimitMs} ms for this connection's transaction, which ran no statement meanwhile; ` +
                'inside db.transaction(fn), use fn\'s tx argument (tx.run, tx.query, tx.exec), not the Database',
            ));
          } else {
            next = Math.min(next, this.idleLimitMs - waited);
          }
        }
      }
      if (this.#waiting.size) this.#watchdog = setTimeout(check, Math.max(next, 5));
    };
    this.#watchdog = setTimeout(check, Math.max(this.idleLimitMs, 5));
  }
}
