/**
 * FileTarget over OPFS in real Chromium: the target contract, case by case,
 * in one page (a loopback server started here serves it), and no staging
 * file left behind by any case, failed puts included.
 */
import { test, expect, type Page } from '@playwright/test';
import { build } from 'esbuild';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { targetCases } from '../contract/target.contract.ts';
import { root } from '../swift.ts';

let server: http.Server;
let origin = '';

test.beforeAll(async () => {
  const bundle = await build({
    entryPoints: [path.join(root, 'test/browser/file-target-page.ts')], bundle: true, format: 'esm', target: 'es2022', write: false, logLevel: 'silent',
  });
  const js = bundle.outputFiles[0]!.contents;
  server = http.createServer((req, res) => {
    if (req.url === '/') return void res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><script type="module" src="/page.js"></script>');
    if (req.url === '/page.js') return void res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

test.afterAll(async () => {
  await new Promise((r) => (server ? server.close(r) : r(null)));
});

async function openPage(page: Page): Promise<void> {
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  await page.goto(`${origin}/`);
  await expect(page).toHaveTitle('ready');
}

test('FileTarget over OPFS in Chromium: the target contract, and no staging file left', async ({ page }) => {
  test.setTimeout(120_000);
  await openPage(page);
  for (const c of targetCases) {
    await test.step(c.name, async () => {
      expect(await page.evaluate((name) => window.fileTargetPage.runCase(name), c.name)).toBe('ok');
    });
  }
  expect(await page.evaluate(() => window.fileTargetPage.leftovers())).toEqual([]);
});
