#!/usr/bin/env node
// The cipherkeep command. Installed, it runs the compiled JavaScript in dist/
// (Node and Deno alike). In a checkout of the repository (tsconfig.json is
// there, and never in the package), it runs the TypeScript sources: Node
// through tsx (a devDependency), Deno natively.
import { existsSync } from 'node:fs';

const fromSource = existsSync(new URL('../tsconfig.json', import.meta.url));
if (fromSource && !('Deno' in globalThis)) {
  const { register } = await import('tsx/esm/api');
  register();
}
const { main } = await import(fromSource ? '../src/cli/main.ts' : '../dist/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
