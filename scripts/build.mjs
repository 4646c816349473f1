#!/usr/bin/env node
/**
 * npm run build: what the package ships, into dist/.
 *   1. tsc (tsconfig.build.json): every module as ESM JavaScript, with .d.ts,
 *      declaration maps and source maps (the sources ship in src/ for them).
 *   2. esbuild: the browser worker with its dependencies in one file,
 *      dist/browser/worker.js, and the pinned engine wasm beside it, so a
 *      bundler finds both through `new URL('./…', import.meta.url)`.
 * Plain tsc, not a bundler, for the library: one output file per source file
 * keeps the Node entry tree-shakable and its stack traces readable, and tsc
 * is the only tool that writes declaration maps for every file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
const require = createRequire(import.meta.url);

fs.rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });

// Declarations keep the sources' `.ts` specifiers; consumers' compilers want the files that ship.
// And the declarations that name wa-sqlite's types must bring them along: its global SQLiteAPI
// (from its package types) and our ambient typings of the internals it ships untyped.
fs.copyFileSync(path.join(root, 'src/engine/modules.d.ts'), path.join(dist, 'engine/modules.d.ts'));
// The page-check pool's thread is plain JavaScript (it starts without a loader): shipped as it is.
fs.copyFileSync(path.join(root, 'src/node-page-check-worker.mjs'), path.join(dist, 'node-page-check-worker.mjs'));
for (const file of fs.readdirSync(dist, { recursive: true, encoding: 'utf8' })) {
  if (!file.endsWith('.d.ts') || file === path.join('engine', 'modules.d.ts')) continue;
  const full = path.join(dist, file);
  let text = fs.readFileSync(full, 'utf8').replace(/(from\s+|import\()(['"])(\.\.?\/[^'"]+)\.ts\2/g, '$1$2$3.js$2');
  const references = [];
  if (/\bSQLite(API|VFS)\b/.test(text)) references.push('/// <reference types="@journeyapps/wa-sqlite" />');
  if (/['"](@journeyapps\/wa-sqlite\/src\/|comlink\/dist\/esm\/node-adapter)/.test(text)) {
    const modules = path.relative(path.dirname(full), path.join(dist, 'engine/modules.d.ts')).split(path.sep).join('/');
    references.push(`/// <reference path="${modules.startsWith('.') ? modules : `./${modules}`}" />`);
  }
  fs.writeFileSync(full, references.length ? `${references.join('\n')}\n${text}` : text);
}

// The pin: read without importing TypeScript.
const pin = fs.readFileSync(path.join(root, 'src/engine/pin.ts'), 'utf8');
const sha256 = /sha256: '([0-9a-f]{64})'/.exec(pin)[1];
const wasmFrom = require.resolve('@journeyapps/wa-sqlite/dist/mc-wa-sqlite.wasm');
const wasm = fs.readFileSync(wasmFrom);
if (createHash('sha256').update(wasm).digest('hex') !== sha256) throw new Error(`${wasmFrom} does not match the pin in src/engine/pin.ts`);

await build({
  entryPoints: [path.join(root, 'src/browser/worker-entry.ts')],
  outfile: path.join(dist, 'browser/worker.js'),
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  legalComments: 'eof',
  logLevel: 'warning',
  plugins: [
    {
      // The engine's glue names its wasm by URL for its own loader, which cipherkeep never uses (it
      // passes the checked bytes). Left in, bundlers would see a second asset to emit.
      name: 'glue-without-wasm-url',
      setup(b) {
        b.onLoad({ filter: /mc-wa-sqlite\.mjs$/ }, async (args) => {
          const text = await fs.promises.readFile(args.path, 'utf8');
          const unused = 'new URL("mc-wa-sqlite.wasm",import.meta.url).href';
          if (!text.includes(unused)) throw new Error(`the engine glue changed: ${unused} not found`);
          return { contents: text.replace(unused, '""'), loader: 'js' };
        });
      },
    },
  ],
});
fs.copyFileSync(wasmFrom, path.join(dist, 'browser/mc-wa-sqlite.wasm'));
fs.chmodSync(path.join(dist, 'browser/mc-wa-sqlite.wasm'), 0o644);
// `cipherkeep/worker.js` is a worker's script, not a module to import from: it exports nothing.
fs.writeFileSync(path.join(dist, 'browser/worker.d.ts'), '// The browser worker: start it with new Worker(url, { type: "module" }); it exports nothing.\nexport {};\n');
console.log(`built ${path.relative(process.cwd(), dist) || '.'}`);
