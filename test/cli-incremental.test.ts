/** The real `cipherkeep` binary's incremental backups: backup --incremental, list --incremental, verify and restore --generation, --json throughout. */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openDatabase } from '../src/node.ts';
import { cli as run, type Run } from './cli-run.ts';
import { tempDir } from './helpers.ts';

const SECRET = 'incremental horse staple';
const NEW_SECRET = 'another staple';
const everything: string[] = [];

async function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const r = await run(args, { env: { CIPHERKEEP_PASSWORD: SECRET, ...env } });
  everything.push(r.stdout, r.stderr);
  return r;
}
const json = (r: Run) => JSON.parse(r.stdout.trim().split('\n').at(-1)!);

async function count(db: string, password = SECRET): Promise<number> {
  const d = await openDatabase(db, { password, cipher: { kdfIterations: 1000 }, readonly: true });
  try {
    return ((await d.query<{ n: number }>('SELECT count(*) AS n FROM t'))[0]!).n;
  } finally {
    await d.close();
  }
}

async function insert(db: string, n: number): Promise<void> {
  const d = await openDatabase(db, { password: SECRET, cipher: { kdfIterations: 1000 } });
  await d.exec(`CREATE TABLE IF NOT EXISTS t (x TEXT); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < ${n}) INSERT INTO t SELECT hex(randomblob(200)) FROM c`);
  await d.close();
}

describe(`cipherkeep CLI, incremental backups (${'Deno' in globalThis ? 'Deno' : 'Node'})`, () => {
  it('backup --incremental, list --incremental, verify and restore --generation, rotate-key --incremental; all --json', async () => {
    const dir = tempDir('cli-incremental');
    const db = path.join(dir, 'app.db');
    const backups = path.join(dir, 'backups');
    const common = ['--db', db, '--backup-dir', backups, '--kdf-iter', '1000'];
    assert.equal((await cli(['create', ...common.slice(0, 2), '--kdf-iter', '1000', '--json'])).code, 0);
    await insert(db, 500);

    const first = await cli(['backup', '--incremental', ...common, '--json']);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual([json(first).ok, json(first).generation, json(first).full], [true, '1', true]);
    await insert(db, 10);
    const second = await cli(['backup', '--incremental', ...common]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^backup: generation 2 in .*\(incremental: \d+ pages?, .* written\)$/m);

    const list = await cli(['list', '--incremental', ...common, '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(json(list).generations.map((g: { generation: string; state: string }) => [g.generation, g.state]), [['2', 'ok'], ['1', 'ok']]);
    assert.deepEqual(json(list).problems, []);
    assert.match((await cli(['list', '--incremental', ...common])).stdout, /^generation +2 .*new page/m);

    const verify = await cli(['verify', '--generation', '1', ...common, '--json']);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(json(verify).generation, '1');
    const wrong = await cli(['verify', '--generation', '1', ...common, '--json'], { CIPHERKEEP_PASSWORD: 'not it' });
    assert.equal(wrong.code, 4, wrong.stdout);
    assert.equal(json(wrong).code, 'WRONG_KEY');
    const bad = await cli(['verify', '--generation', 'yesterday', ...common, '--json']);
    assert.equal(bad.code, 2);
    assert.equal(json(bad).code, 'INVALID_ARGUMENT');
    assert.equal((await cli(['verify', 'some-file.db', '--generation', '1', ...common])).code, 2, 'a file and a generation');
    assert.equal((await cli(['prune', '--incremental', ...common])).code, 2);

    const restore = await cli(['restore', '--generation', '1', ...common, '--json']);
    assert.equal(restore.code, 0, restore.stderr);
    assert.equal(json(restore).generation, '1');
    assert.ok(fs.existsSync(json(restore).preRestorePath));
    assert.equal(await count(db), 500);
    const latest = await cli(['restore', '--generation', 'latest', ...common]);
    assert.equal(latest.code, 0, latest.stderr);
    assert.equal(await count(db), 510);

    const rotated = await cli(['rotate-key', '--incremental', ...common, '--new-password-env', 'NEW', '--json'], { NEW: NEW_SECRET });
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.deepEqual([json(rotated).passwordChanged, json(rotated).generation, json(rotated).full], [true, '3', true]);
    const after = json(await cli(['list', '--incremental', ...common, '--json'], { CIPHERKEEP_PASSWORD: NEW_SECRET }));
    assert.deepEqual(after.generations.map((g: { generation: string }) => g.generation), ['3']);
    assert.equal(await count(db, NEW_SECRET), 510);

    for (const out of everything) {
      assert.ok(!out.includes(SECRET) && !out.includes(NEW_SECRET), 'no password in any output');
    }
  });
});
