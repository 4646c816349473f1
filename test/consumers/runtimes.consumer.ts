/**
 * The installed package, used as a Node or Deno app would: `npm install` of
 * the tarball into a fresh project outside this repository, then plain
 * `node app.mjs` (Node 20, no loader), `deno run -A app.mjs`, a script using
 * the `npm:` specifier, and the `cipherkeep` command under both.
 */
import { before } from 'node:test';
import { describe, it } from '../timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { consumerProject, fixture, run } from './setup.ts';

const deno = createRequire(import.meta.url).resolve('deno/deno');
const password = 'consumer runtime pw';
const env = { ...process.env, CONSUMER_PASSWORD: password, CIPHERKEEP_PASSWORD: password };
let project: string;

const scratch = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cipherkeep-consumer-'));
  return dir;
};

function checkApp(stdout: string) {
  const out = JSON.parse(stdout.trim().split('\n').at(-1)!);
  assert.deepEqual(out.rows, [{ body: 'hello' }]);
  assert.deepEqual(out.backup, { success: true, error: null });
  assert.equal(out.verify.ok, true, JSON.stringify(out.verify));
  assert.equal(out.onDisk, 1);
  const wrong = { wrongKey: true, base: true, name: 'WrongKeyError', code: 'WRONG_KEY' };
  assert.deepEqual(out.wrongKey, wrong);
  assert.deepEqual(out.workerWrongKey, wrong, 'typed across worker_threads');
  assert.deepEqual(out.workerRows, [{ body: 'hello' }]);
}

describe('consumers: Node, Deno and the CLI from an npm install of the tarball', { timeout: 600_000 }, () => {
  before(() => {
    project = consumerProject('runtimes', {
      files: {
        'app.mjs': fixture('app.mjs'),
        'npm-specifier.ts': "import { ENGINE_PIN, openDatabase } from 'npm:cipherkeep/node';\nconsole.log(ENGINE_PIN.sqlite, typeof openDatabase);\n",
      },
    });
  });

  it('plain Node (no loader) creates, backs up, verifies, gets WrongKeyError and exits on its own', { timeout: 120_000 }, () => {
    const dir = scratch();
    try {
      checkApp(run('node', ['app.mjs', dir], { cwd: project, env, timeout: 110_000 }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('Deno runs the same script from the npm install, and the npm: specifier form', { timeout: 180_000 }, () => {
    const dir = scratch();
    try {
      checkApp(run(deno, ['run', '-A', 'app.mjs', dir], { cwd: project, env, timeout: 110_000 }));
      assert.match(run(deno, ['run', '-A', 'npm-specifier.ts'], { cwd: project, env, timeout: 60_000 }), /^3\.53\.0 function$/m);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the cipherkeep command works under Node (npx) and Deno from the install', { timeout: 180_000 }, () => {
    const dir = scratch();
    try {
      const db = path.join(dir, 'cli.db');
      const backups = path.join(dir, 'backups');
      const cli = path.join(project, 'node_modules/.bin/cipherkeep');
      run(cli, ['create', '--db', db], { cwd: project, env });
      const backedUp = JSON.parse(run(cli, ['backup', '--db', db, '--backup-dir', backups, '--json'], { cwd: project, env }));
      assert.equal(backedUp.ok, true, JSON.stringify(backedUp));
      assert.match(run(cli, ['verify', backedUp.backupPath], { cwd: project, env }), /ok/i);
      assert.throws(
        () => run(cli, ['backup', '--db', db, '--backup-dir', backups, '--force'], { cwd: project, env: { ...env, CIPHERKEEP_PASSWORD: 'wrong' } }),
        (e: Error & { status?: number }) => e.status === 4,
        'a wrong password exits with 4',
      );
      const script = path.join(project, 'node_modules/cipherkeep/bin/cipherkeep.mjs');
      const viaDeno = JSON.parse(run(deno, ['run', '-A', script, 'backup', '--db', db, '--backup-dir', backups, '--force', '--json'], { cwd: project, env }));
      assert.equal(viaDeno.ok, true, JSON.stringify(viaDeno));
      const viaSpecifier = JSON.parse(run(deno, ['run', '-A', 'npm:cipherkeep', 'verify', viaDeno.backupPath, '--json'], { cwd: project, env }));
      assert.equal(viaSpecifier.ok, true, `deno run -A npm:cipherkeep: ${JSON.stringify(viaSpecifier)}`);
      assert.equal(JSON.parse(run(cli, ['list', '--backup-dir', backups, '--json'], { cwd: project, env })).backups.length, 1, 'one backup per day: the forced one replaced nothing else (max 1)');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
