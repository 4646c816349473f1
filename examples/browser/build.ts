/**
 * Builds the browser bundles into .browser-build/: the worker, the page
 * library, the example app and the test harness, plus the engine's wasm.
 *   node --import tsx examples/browser/build.ts
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { build } from 'esbuild';
import { ENGINE_PIN } from '../../wasm/pin.ts';

const root = path.resolve(import.meta.dirname, '../..');
export const outDir = path.join(root, '.browser-build');

export async function buildBrowser(): Promise<string> {
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  const common = { bundle: true, format: 'esm', target: 'es2022', sourcemap: true, logLevel: 'warning' } as const;
  await build({
    ...common,
    entryPoints: {
      worker: path.join(root, 'src/browser/worker-entry.ts'),
      'example/app': path.join(root, 'examples/browser/app.ts'),
      'harness/harness': path.join(root, 'test/browser/harness.ts'),
      'harness/vfs-worker': path.join(root, 'test/browser/vfs-worker.ts'),
      'harness/offsite': path.join(root, 'test/browser/offsite-page.ts'),
    },
    outdir: outDir,
  });
  const wasm = createRequire(import.meta.url).resolve(`${ENGINE_PIN.package}/${ENGINE_PIN.wasm}`);
  fs.copyFileSync(wasm, path.join(outDir, 'mc-wa-sqlite.wasm'));
  fs.copyFileSync(path.join(root, 'examples/browser/index.html'), path.join(outDir, 'example/index.html'));
  fs.copyFileSync(path.join(root, 'test/browser/harness.html'), path.join(outDir, 'harness/index.html'));
  return outDir;
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(`built ${await buildBrowser()}`);
