/** Every test carries a timeout: test files take `it` from ./timeouts.ts, never straight from node:test (Deno would let them hang). */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { it } from './timeouts.ts';

const here = import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname);

it('no test file imports it, test or describe from node:test directly', () => {
  const files = fs.readdirSync(here, { recursive: true }).map(String).filter((f) => /\.(test|contract|consumer)\.ts$/.test(f));
  assert.ok(files.length > 20, `found ${files.length} test files`);
  const offenders = files.filter((f) => /import\s*(\{[^}]*\b(it|test|describe)\b[^}]*\}|\*\s*as\s+\w+)\s*from\s*'node:test'/.test(fs.readFileSync(path.join(here, f), 'utf8')));
  assert.deepEqual(offenders, []);
});
