// The page-check threads' HMAC, both ways (src/node-page-check-worker.mjs), in one
// thread, on up to 50 MB of 4 KiB pages of a file (a bench database by default):
//   node bench/page-mac.mjs [file]    deno run -A bench/page-mac.mjs [file]
// Prints the milliseconds of 5 alternating runs of each; the SHA-512 of the
// same bytes in one call is the floor.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { pageMacCheck } from '../src/node-page-check-worker.mjs';

const file = process.argv[2] ?? new URL('.data/notes-100mb-delete.db', import.meta.url).pathname;
const bytes = fs.readFileSync(file);
const pages = Math.min(12800, Math.floor(bytes.length / 4096));
const key = crypto.randomBytes(32);
const ways = { createHmac: pageMacCheck('SHA512', key, 4032, null), 'one-shot hash': pageMacCheck('SHA512', key, 4032) };
const ms = { createHmac: [], 'one-shot hash': [], 'SHA-512 floor': [] };
for (let run = 0; run < 5; run++) {
  for (const [way, check] of Object.entries(ways)) {
    const t = performance.now();
    for (let p = 0; p < pages; p++) check(bytes, p * 4096, 0, p + 1);
    ms[way].push(Math.round(performance.now() - t));
  }
  const t = performance.now();
  crypto.createHash('sha512').update(bytes.subarray(0, pages * 4096)).digest();
  ms['SHA-512 floor'].push(Math.round(performance.now() - t));
}
const runtime = typeof Deno === 'undefined' ? `node ${process.version}` : `deno ${Deno.version.deno}`;
console.log(`${runtime}, ${(pages * 4096 / 2 ** 20).toFixed(0)} MiB of 4 KiB pages, one thread, ms per run:`);
for (const [way, runs] of Object.entries(ms)) console.log(`  ${way.padEnd(14)} ${runs.join(' ')}`);
