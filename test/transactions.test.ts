/**
 * Calling the Database instead of `tx` inside `transaction()` never hangs:
 * it fails at once (DeadlockError) or after the busy timeout of an idle
 * transaction (BusyError), names `tx`, rolls back, and the connection goes on.
 * Callers who only wait their turn still get it.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import path from 'node:path';
import { BusyError, DeadlockError } from '../src/index.ts';
import { openDatabase } from '../src/node.ts';
import { tempDir } from './helpers.ts';

const FAST = { kdfIterations: 1000 };
const dir = tempDir('tx');
let n = 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function fresh(busyTimeoutMs = 5000) {
  const db = await openDatabase(path.join(dir, `db-${++n}.db`), { password: 'pw', create: true, cipher: FAST, busyTimeoutMs });
  await db.exec('CREATE TABLE t (v)');
  return db;
}

describe('transaction misuse', { timeout: 60_000 }, () => {
  it('db.run inside the callback (the natural first attempt) fails at once with DeadlockError naming tx', async () => {
    const db = await fresh();
    const started = Date.now();
    const e = await db.transaction(async () => {
      await db.run('INSERT INTO t VALUES (1)');
    }).then(() => null, (err: unknown) => err);
    assert.ok(e instanceof DeadlockError, String(e));
    assert.equal((e as DeadlockError).code, 'DEADLOCK');
    assert.match((e as Error).message, /run\(\).*tx argument/);
    assert.ok(Date.now() - started < 1000, 'at once');
    // Rolled back, and the connection goes on.
    await db.run('INSERT INTO t VALUES (2)');
    assert.deepEqual(await db.query('SELECT v FROM t'), [{ v: 2 }]);
    await db.close();
  });

  it('the same for query, exec, a nested transaction and close', async () => {
    const db = await fresh();
    const calls: Record<string, () => Promise<unknown>> = {
      'query()': () => db.query('SELECT 1'),
      'exec()': () => db.exec('SELECT 1'),
      'transaction()': () => db.transaction(async () => {}),
      'close()': () => db.close(),
    };
    for (const [name, call] of Object.entries(calls)) {
      const e = await db.transaction(async (tx) => {
        const pending = call();
        await tx.run('INSERT INTO t VALUES (1)');
        return pending;
      }).then(() => null, (err: unknown) => err);
      assert.ok(e instanceof DeadlockError, `${name}: ${String(e)}`);
      assert.ok((e as Error).message.startsWith(name), (e as Error).message);
    }
    assert.equal(db.closed, false);
    assert.deepEqual(await db.query('SELECT count(*) AS n FROM t'), [{ n: 0 }]);
    await db.close();
  });

  it('a call after an await inside the callback fails with BusyError naming tx once the transaction sits idle for the busy timeout', async () => {
    const db = await fresh(300);
    const started = Date.now();
    const e = await db.transaction(async (tx) => {
      await tx.run('INSERT INTO t VALUES (1)');
      await db.run('INSERT INTO t VALUES (2)');
    }).then(() => null, (err: unknown) => err);
    const took = Date.now() - started;
    assert.ok(e instanceof BusyError, String(e));
    assert.match((e as Error).message, /tx argument/);
    assert.ok(took >= 290 && took < 3000, `after the busy timeout, not never (${took} ms)`);
    assert.deepEqual(await db.query('SELECT count(*) AS n FROM t'), [{ n: 0 }], 'rolled back');
    await db.run('INSERT INTO t VALUES (3)');
    await db.close();
  });

  it('a caller who only waits its turn gets it while the transaction works, however long', async () => {
    const db = await fresh(200);
    let committed = false;
    const tx = db.transaction(async (t) => {
      for (let i = 0; i < 8; i++) {
        await t.run('INSERT INTO t VALUES (?)', [i]);
        await sleep(80); // never idle for the 200 ms busy timeout, but busy for 640 ms in all
      }
      committed = true;
    });
    await sleep(10);
    const waiting = db.query<{ n: number }>('SELECT count(*) AS n FROM t');
    await tx;
    assert.equal(committed, true);
    assert.deepEqual(await waiting, [{ n: 8 }], 'ran after the commit and saw it');
    await db.close();
  });

  it('calls queued behind a transaction that ends in time run in order', async () => {
    const db = await fresh(300);
    const order: string[] = [];
    const tx = db.transaction(async (t) => {
      await sleep(100);
      await t.run('INSERT INTO t VALUES (1)');
      order.push('tx');
    });
    const a = db.run('INSERT INTO t VALUES (2)').then(() => order.push('a'));
    const b = db.query('SELECT v FROM t').then((rows) => (order.push('b'), rows));
    await Promise.all([tx, a]);
    assert.deepEqual(await b, [{ v: 1 }, { v: 2 }]);
    assert.deepEqual(order, ['tx', 'a', 'b']);
    await db.close();
  });
});
