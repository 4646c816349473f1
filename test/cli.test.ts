/** The real `cipherkeep` binary as a subprocess, under the runtime running this suite (Node or Deno). */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { NodeFileStore, openDatabase } from '../src/node.ts';
import { tempDir } from './helpers.ts';

const BIN = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '../bin/cipherkeep.mjs');
const RUNTIME = 'Deno' in globalThis ? [process.execPath, 'run', '-A', BIN] : [process.execPath, BIN];
const SECRET = 'correct horse battery staple';
const everything: string[] = []; // all output of every run, searched for the password at the end

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], options: { env?: Record<string, string | undefined>; input?: string; cwd?: string } = {}): Promise<Run> {
  const env: Record<string, string | undefined> = { ...process.env, CIPHERKEEP_PASSWORD: SECRET, ...options.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const child = spawn(RUNTIME[0]!, [...RUNTIME.slice(1), ...args], { env: env as NodeJS.ProcessEnv, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end(options.input ?? '');
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) =>
    child.on('close', (code) => {
      everything.push(stdout, stderr);
      resolve({ code: code ?? -1, stdout, stderr });
    }),
  );
}

const json = (r: Run) => JSON.parse(r.stdout.trim().split('\n').at(-1)!);

async function setup() {
  const dir = tempDir('cli');
  const db = path.join(dir, 'app.db');
  const backups = path.join(dir, 'backups');
  const created = await cli(['create', '--db', db, '--kdf-iter', '1000', '--json']);
  assert.equal(created.code, 0, created.stderr);
  return { dir, db, backups, common: ['--db', db, '--backup-dir', backups, '--kdf-iter', '1000'] };
}

describe(`cipherkeep CLI (${'Deno' in globalThis ? 'Deno' : 'Node'})`, () => {
  it('runs the whole story: create, backup, list, latest, verify, prune, rotate-key, restore', async () => {
    const { db, common } = await setup();
    const backup = await cli(['backup', ...common, '--json']);
    assert.equal(backup.code, 0, backup.stderr);
    const first = json(backup);
    assert.equal(first.ok, true);
    assert.equal(json(await cli(['backup', ...common, '--json'])).existing, true, 'one per day');
    const forced = json(await cli(['backup', ...common, '--force', '--max-backups', '3', '--json']));
    assert.notEqual(forced.backupPath, first.backupPath);
    const list = json(await cli(['list', ...common, '--json']));
    assert.equal(list.backups.length, 2);
    assert.equal((await cli(['latest', ...common])).stdout.trim(), forced.backupPath);
    const verified = await cli(['verify', forced.backupPath, '--kdf-iter', '1000', '--json']);
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(json(verified).ok, true);
    assert.equal(json(await cli(['prune', ...common, '--max-backups', '1', '--json'])).deleted, 1);
    const rotated = await cli(['rotate-key', ...common, '--new-password-env', 'NEW_PW', '--json'], { env: { NEW_PW: `${SECRET} 2` } });
    assert.equal(rotated.code, 0, rotated.stderr);
    const after = json(await cli(['list', ...common, '--json'])).backups;
    assert.deepEqual(after.map((b: { path: string }) => b.path), [json(rotated).backupPath]);
    assert.equal((await cli(['verify', after[0].path, '--kdf-iter', '1000'])).code, 4, 'the old password opens no backup');
    const restored = await cli(['restore', ...common, after[0].path, '--json'], { env: { CIPHERKEEP_PASSWORD: `${SECRET} 2` } });
    assert.equal(restored.code, 0, restored.stderr);
    assert.ok(fs.existsSync(json(restored).preRestorePath));
    assert.ok(fs.existsSync(db));
  });

  it('reads the password from a file descriptor', async () => {
    const { common } = await setup();
    const r = await cli(['backup', ...common, '--password-fd', '0'], { env: { CIPHERKEEP_PASSWORD: undefined }, input: `${SECRET}\n` });
    assert.equal(r.code, 0, r.stderr);
  });

  it('prompts with echo off when stdin is a terminal', async () => {
    const dir = tempDir('cli');
    const db = path.join(dir, 'tty.db');
    const command = [...RUNTIME, 'create', '--db', db, '--kdf-iter', '1000'].map((a) => `'${a}'`).join(' ');
    const env = { ...process.env };
    delete env.CIPHERKEEP_PASSWORD;
    // `script` gives the CLI a real pseudo-terminal; we type at each prompt, as a person would.
    const child = spawn('script', ['-qec', command, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let answered = 0;
    child.stdout.on('data', (d) => {
      output += d;
      const prompts = (output.match(/new password: |again: /g) ?? []).length;
      while (answered < prompts) {
        answered++;
        child.stdin.write('typed-secret-9\r');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    child.stdin.end();
    everything.push(output.replaceAll('typed-secret-9', ''));
    assert.equal(code, 0, output);
    assert.equal(answered, 2, 'asked twice for a new password');
    assert.match(output, /created /);
    assert.equal(output.includes('typed-secret-9'), false, 'the typed password was not echoed');
    assert.ok(fs.existsSync(db));
  });

  it('exit codes: wrong password 4, corrupted backup 3, lock held 5, bad usage 2', async () => {
    const { common, db, backups } = await setup();
    const filled = await openDatabase(db, { password: SECRET, cipher: { kdfIterations: 1000 } });
    await filled.exec("CREATE TABLE t (v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 3000) INSERT INTO t SELECT hex(randomblob(20)) FROM c");
    await filled.close();
    const wrong = await cli(['backup', ...common], { env: { CIPHERKEEP_PASSWORD: 'nope' } });
    assert.equal(wrong.code, 4, wrong.stderr);
    const made = json(await cli(['backup', ...common, '--json']));
    const bytes = fs.readFileSync(made.backupPath);
    bytes[bytes.length - 300]! ^= 0xff;
    const corrupt = path.join(backups, 'backup_20200101_000000.db');
    fs.writeFileSync(corrupt, bytes);
    assert.equal((await cli(['verify', corrupt, '--kdf-iter', '1000'])).code, 3);
    assert.equal((await cli(['restore', ...common, corrupt])).code, 3);
    // Another process holds the database's backup lock.
    const held = await new NodeFileStore().lock(`${db}.backup-lock`, 1000);
    const locked = await cli(['backup', ...common, '--force', '--lock-timeout-ms', '200', '--json']);
    await held.release();
    assert.equal(locked.code, 5, locked.stderr);
    assert.equal(json(locked).errorCode, 'LOCK_TIMEOUT');
    for (const args of [[], ['bogus'], ['backup', '--db', db], ['backup', ...common, '--max-backups', 'many'], ['backup', ...common, '--unknown-flag'], ['verify']]) {
      assert.equal((await cli(args)).code, 2, JSON.stringify(args));
    }
    assert.equal((await cli(['create', '--db', db])).code, 1, 'create refuses an existing file');
  });

  it('exit code 6 when the backup disk is too small (a real tmpfs)', async (t) => {
    if (process.getuid?.() !== 0 && !process.env.CI) return t.skip('needs root to mount a tmpfs');
    const { common, backups } = await setup();
    fs.mkdirSync(backups);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4k', 'tmpfs', backups]);
    try {
      const r = await cli(['backup', ...common, '--json']);
      assert.equal(r.code, 6, r.stderr);
      assert.match(json(r).error, /insufficient space/);
    } finally {
      execFileSync('umount', [backups]);
    }
  });

  it('never prints the password', () => {
    assert.ok(everything.length > 20);
    const all = everything.join('\n');
    assert.equal(all.includes(SECRET), false);
    assert.equal(all.includes('battery staple'), false);
  });
});
