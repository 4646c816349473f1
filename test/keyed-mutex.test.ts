/** The in-process lock: exclusive, FIFO, timed, and leaves no entry behind. */
import { it } from './timeouts.ts';
import assert from 'node:assert/strict';
import { KeyedMutex, LockTimeoutError } from '../src/index.ts';

it('serializes holders of one name in arrival order and forgets released names', async () => {
  const mutex = new KeyedMutex();
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const release = await mutex.acquire('db');
      order.push(i);
      await new Promise((r) => setTimeout(r, 1));
      order.push(i);
      await release();
    }),
  );
  assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => [i, i]).flat());
  for (let i = 0; i < 1000; i++) await (await mutex.acquire(`user-${i}`))();
  assert.equal(mutex.size, 0, 'no entry per name ever used');
});

it('times out a waiter without disturbing the queue', async () => {
  const mutex = new KeyedMutex();
  const release = await mutex.acquire('db');
  await assert.rejects(mutex.acquire('db', 20), LockTimeoutError);
  const next = mutex.acquire('db', 1000);
  await release();
  await (await next)();
  assert.equal(mutex.size, 0);
});
