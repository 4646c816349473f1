/**
 * S3 from the browser: the target contract in real Chromium against real
 * Swift, through presigned URLs. A loopback server (started here) serves the
 * page and signs each request at /presign, so the page never sees a
 * credential — checked on every request it sends to the store.
 */
import { test, expect } from '@playwright/test';
import { build } from 'esbuild';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { S3Target, createPresigner, type Presign } from '../../src/targets/s3/index.ts';
import { targetCases } from '../contract/target.contract.ts';
import { root, swift, useSwift, type SwiftUse } from '../swift.ts';

let store: SwiftUse;
let server: http.Server;
let origin = '';
const run = `browser-${Date.now().toString(36)}`;

test.beforeAll(async () => {
  test.setTimeout(240_000);
  store = await useSwift();
  if (!store.env) return;
  const env = store.env;
  const credentials = { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey };
  const presigners: Record<string, Presign> = {
    right: createPresigner({ bucket: env.bucket, endpoint: env.endpoint, region: env.region, prefix: `${run}/`, credentials }),
    wrong: createPresigner({ bucket: env.bucket, endpoint: env.endpoint, region: env.region, prefix: `${run}/`, credentials: { ...credentials, secretAccessKey: 'wrong' } }),
  };
  const bundle = await build({
    entryPoints: [path.join(root, 'test/browser/s3-page.ts')], bundle: true, format: 'esm', target: 'es2022', write: false, logLevel: 'silent',
  });
  const js = bundle.outputFiles[0]!.contents;
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/') return void res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><script type="module" src="/s3-page.js"></script>');
    if (url.pathname === '/s3-page.js') return void res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
    if (url.pathname !== '/presign' || req.method !== 'POST') return void res.writeHead(404).end();
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', async () => {
      try {
        const { method, key, request } = JSON.parse(body);
        const signed = await presigners[url.searchParams.get('wrong') ? 'wrong' : 'right']!(method, key, request);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(signed));
      } catch (e) {
        res.writeHead(403).end((e as Error).message);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

test.afterAll(async () => {
  await new Promise((r) => (server ? server.close(r) : r(null)));
  if (store?.env) {
    const env = store.env;
    const all = new S3Target({ bucket: env.bucket, endpoint: env.endpoint, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey } });
    for (const o of await all.client.listObjects(`${run}/`)) await all.client.deleteObject(o.key);
  }
  if (store?.started) await swift('stop');
});

async function openPage(page: import('@playwright/test').Page) {
  test.skip(!store.env, store.skip ?? '');
  const toStore: { url: string; headers: Record<string, string> }[] = [];
  page.on('request', (r) => {
    if (r.url().startsWith(store.env!.endpoint)) toStore.push({ url: r.url(), headers: r.headers() });
  });
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  await page.goto(`${origin}/`);
  await expect(page).toHaveTitle('ready');
  return toStore;
}

for (const c of targetCases) {
  test(`S3 on Swift from Chromium via presigned URLs: ${c.name}`, async ({ page }) => {
    const toStore = await openPage(page);
    expect(await page.evaluate(([name, prefix]) => window.s3page.runCase(name!, prefix!), [c.name, `${run}/${c.name.slice(0, 12).replace(/\W/g, '_')}-`])).toBe('ok');
    // Every request the page sent to the store was presigned; none carried an Authorization header.
    if (!c.name.startsWith('names must')) expect(toStore.length).toBeGreaterThan(0);
    for (const r of toStore) {
      expect(r.headers.authorization).toBeUndefined();
      expect(r.url).toContain('X-Amz-Signature=');
      expect(r.url).not.toContain(store.env!.secretAccessKey);
    }
  });
}

test('a request the store denies reaches the page as TARGET_DENIED (the store must send CORS headers on errors)', async ({ page }) => {
  await openPage(page);
  const out = await page.evaluate((prefix) => window.s3page.deniedCode(prefix), `${run}/denied/`);
  expect(out).toMatch(/^TARGET_DENIED: .*403 SignatureDoesNotMatch/);
});
