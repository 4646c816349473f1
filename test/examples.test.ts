/**
 * The scheduled-backup examples run as written, on Deno and on Node, from
 * wherever a user stands: each runs with its data directory as the working
 * directory. They import `cipherkeep/node`, i.e. this package's build.
 */
import { before } from 'node:test';
import { it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { tempDir } from './helpers.ts';

const root = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
const env = { ...process.env, CIPHERKEEP_PASSWORD: 'example password' };

before(() => {
  // `npm test` builds first; run on its own from a fresh clone, build here.
  if (!fs.existsSync(path.join(root, 'dist/node.js'))) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'pipe', timeout: 120_000 });
});

function check(output: string) {
  assert.equal((output.match(/^round \d: backed up to /gm) ?? []).length, 4, output);
  assert.equal((output.match(/kept: (.*)/)?.[1] ?? '').split(', ').length, 3, 'retention kept three');
}

it('examples/deno/scheduled-backup.ts runs under Deno', { timeout: 120_000 }, () => {
  const deno = 'Deno' in globalThis ? process.execPath : createRequire(import.meta.url).resolve('deno/deno');
  const cwd = tempDir('ex-deno');
  check(execFileSync(deno, ['run', '-A', path.join(root, 'examples/deno/scheduled-backup.ts'), '.', '4', '10'], { cwd, env, timeout: 110_000 }).toString());
});

it('examples/node/scheduled-backup.mjs runs under plain Node with the worker API', { timeout: 120_000 }, () => {
  const cwd = tempDir('ex-node');
  check(execFileSync('node', [path.join(root, 'examples/node/scheduled-backup.mjs'), '.', '4', '10'], { cwd, env, timeout: 110_000 }).toString());
});

it('examples/deno/cron-backup.ts --once backs up, and a second run the same day finds today\'s backup', { timeout: 120_000 }, () => {
  const deno = 'Deno' in globalThis ? process.execPath : createRequire(import.meta.url).resolve('deno/deno');
  const cwd = tempDir('ex-cron');
  execFileSync('node', [path.join(root, 'bin/cipherkeep.mjs'), 'create', '--db', 'app.db'], { cwd, env, timeout: 60_000 });
  const run = () => execFileSync(deno, ['run', '-A', '--unstable-cron', path.join(root, 'examples/deno/cron-backup.ts'), 'app.db', 'backups', '--once'], { cwd, env, timeout: 110_000 }).toString();
  assert.match(run(), /^backed up to .*backups\/.* \(\d+ bytes\)$/m);
  assert.match(run(), /^today's backup exists: /m);
  assert.equal(fs.readdirSync(path.join(cwd, 'backups')).filter((f) => f.endsWith('.db')).length, 1);
});
