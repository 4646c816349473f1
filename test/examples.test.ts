/** The scheduled-backup examples run as written, on Deno and on Node. */
import { it } from './timeouts.ts';
import assert from 'node:assert/strict';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { tempDir } from './helpers.ts';

const root = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
const env = { ...process.env, CIPHERKEEP_PASSWORD: 'example password' };

function check(output: string) {
  assert.equal((output.match(/^round \d: backed up to /gm) ?? []).length, 4, output);
  assert.equal((output.match(/kept: (.*)/)?.[1] ?? '').split(', ').length, 3, 'retention kept three');
}

it('examples/deno/scheduled-backup.ts runs under Deno', () => {
  const deno = 'Deno' in globalThis ? process.execPath : createRequire(import.meta.url).resolve('deno/deno');
  check(execFileSync(deno, ['run', '-A', 'examples/deno/scheduled-backup.ts', tempDir('ex-deno'), '4', '10'], { cwd: root, env }).toString());
});

it('examples/node/scheduled-backup.ts runs under Node with the worker API', () => {
  check(execFileSync('node', ['--import', 'tsx', 'examples/node/scheduled-backup.ts', tempDir('ex-node'), '4', '10'], { cwd: root, env }).toString());
});
