/**
 * Size budgets for what browsers download (the engine's wasm aside, which is
 * pinned in wasm/pin.ts): the page's entry stays a thin Comlink client, and
 * the worker's JavaScript stays small beside its 1.3 MB engine. A dependency
 * that drags in a large library fails here first.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');

async function gzippedKiB(entry: string): Promise<number> {
  const out = await build({ entryPoints: [path.join(root, entry)], bundle: true, minify: true, format: 'esm', target: 'es2022', write: false, logLevel: 'silent' });
  return gzipSync(out.outputFiles[0]!.contents).length / 1024;
}

describe('bundle size (minified, gzipped)', () => {
  it('the page entry, src/browser.ts, is under 5 KiB', async () => {
    const kib = await gzippedKiB('src/browser.ts');
    assert.ok(kib < 5, `${kib.toFixed(1)} KiB`);
  });

  it('the worker, src/browser/worker-entry.ts, is under 70 KiB of JavaScript', async () => {
    const kib = await gzippedKiB('src/browser/worker-entry.ts');
    assert.ok(kib < 70, `${kib.toFixed(1)} KiB`);
  });
});
