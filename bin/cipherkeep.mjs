#!/usr/bin/env node
// The cipherkeep command. It runs from the TypeScript sources: Node loads
// them through tsx, Deno natively (`deno run -A bin/cipherkeep.mjs ...`).
if (!('Deno' in globalThis)) {
  const { register } = await import('tsx/esm/api');
  register();
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
