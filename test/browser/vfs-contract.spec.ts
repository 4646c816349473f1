/**
 * The VFS contract (test/contract/vfs.contract.ts), the same suite memory and
 * the Node/Deno filesystem pass, against OpfsVFS in Chromium: each connection
 * lives in a worker of one page, and the suite drives it from here.
 */
import { test, expect, type Page } from '@playwright/test';
import { fromWire } from '../../src/worker/protocol.ts';
import type { OpenOptions, Transaction } from '../../src/index.ts';
import { vfsContract, type Connection } from '../contract/vfs.contract.ts';

let page: Page;

test.beforeAll(async ({ browser }) => {
  page = await browser.newPage();
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  await page.goto('/harness/');
  await expect(page.locator('#status')).toHaveText('ready');
});

test.afterAll(() => page.close());

/** One call into the worker; an error comes back as the class it was thrown as. */
async function call<T>(method: string, ...args: unknown[]): Promise<T> {
  const r = await page.evaluate(([m, a]) => window.harness.vfs(m as never, a), [method, args] as const);
  if ('value' in r) return r.value as T;
  throw fromWire(r.error);
}

function connection(id: number): Connection {
  const statements = (via: 'call' | 'tx'): Transaction => ({
    exec: (sql) => call(via, id, 'exec', [sql]),
    query: (sql, params) => call(via, id, 'query', [sql, params]),
    run: (sql, params) => call(via, id, 'run', [sql, params]),
  });
  return {
    ...statements('call'),
    close: () => call('call', id, 'close', []),
    async transaction(fn) {
      await call('begin', id);
      let result;
      try {
        result = await fn(statements('tx'));
      } catch (e) {
        await call('end', id, false);
        throw e;
      }
      await call('end', id, true);
      return result;
    },
  };
}

vfsContract(
  'OPFS (Chromium)',
  {
    open: async (name: string, options: OpenOptions) => connection(await call<number>('open', `/${name}`, options)),
    readFile: async (name: string) => {
      const b64 = await call<string | null>('readFile', `/${name}`);
      return b64 === null ? null : new Uint8Array(Buffer.from(b64, 'base64'));
    },
  },
  { describe: test.describe, it: test },
);
