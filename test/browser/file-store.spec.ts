/**
 * The FileStore read contract (test/contract/file-store.contract.ts), the
 * same cases memory and the Node/Deno filesystem pass, on OpfsFileStore in a
 * worker in Chromium (where readInto uses read-only sync access handles).
 */
import { test, expect } from '@playwright/test';

test('OpfsFileStore: read and readInto agree on every case', async ({ page }) => {
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  await page.goto('/harness/');
  await expect(page.locator('#status')).toHaveText('ready');
  const r = await page.evaluate(() => window.harness.vfs('fileStoreReadCases', []));
  expect('value' in r, JSON.stringify(r)).toBe(true);
  const results = (r as { value: Array<{ name: string; failures: string[] }> }).value;
  expect(results.length).toBeGreaterThanOrEqual(6);
  expect(results.filter((x) => x.failures.length)).toEqual([]);
});
