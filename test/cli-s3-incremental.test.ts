/**
 * The real `cipherkeep` binary with incremental backups on an s3:// backup
 * directory on the real Swift: backup --incremental (a generation on every
 * run that finds a change, only changed pages sent; none when nothing
 * changed), list --incremental, verify and restore --generation N (also
 * with no database: the password opens the generations), rotate-key
 * --incremental (a full generation under the new password, the old ones
 * gone); --json throughout; secrets never in the output.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from './timeouts.ts';
import { openDatabase } from '../src/node.ts';
import { S3Target } from '../src/targets/s3/index.ts';
import { cli as runCli, json, type Run } from './cli-run.ts';
import { tempDir } from './helpers.ts';
import { useSwift } from './swift.ts';

const store = await useSwift();
const skip = store.skip;
const env = store.env!;
const SECRET = 'correct horse battery staple';
const NEW = 'new secret for rotate';
const run = `cli-inc-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
const outputs: string[] = [];

async function cli(args: string[], extra: Record<string, string | undefined> = {}): Promise<Run> {
  const r = await runCli(args, {
    env: { AWS_ACCESS_KEY_ID: env.accessKeyId, AWS_SECRET_ACCESS_KEY: env.secretAccessKey, AWS_REGION: env.region, AWS_ENDPOINT_URL: env.endpoint, CIPHERKEEP_PASSWORD: SECRET, ...extra },
  });
  outputs.push(r.stdout, r.stderr);
  return r;
}

async function query(db: string, password: string, sql: string): Promise<unknown[]> {
  const d = await openDatabase(db, { password, cipher: { kdfIterations: 1000 } });
  try {
    return await d.query(sql);
  } finally {
    await d.close();
  }
}

if (!skip) {
  after(async () => {
    const all = new S3Target({ bucket: env.bucket, endpoint: env.endpoint, region: env.region, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey } });
    for (const o of await all.client.listObjects(`${run}/`)) await all.client.deleteObject(o.key);
  });
}

describe(`cipherkeep CLI: incremental backups on s3:// (${'Deno' in globalThis ? 'Deno' : 'Node'})`, { skip }, () => {
  it('backup --incremental, list --incremental, verify and restore --generation, rotate-key --incremental', { timeout: 240_000 }, async () => {
    const dir = tempDir('cli-s3-inc');
    const db = path.join(dir, 'app.db');
    const url = `s3://${env.bucket}/${run}/story`;
    const common = ['--db', db, '--backup-dir', url, '--kdf-iter', '1000'];
    assert.equal((await cli(['create', '--db', db, '--kdf-iter', '1000'])).code, 0);
    await query(db, SECRET, "CREATE TABLE t (id INTEGER PRIMARY KEY, v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 10000) INSERT INTO t SELECT i, 'first ' || i FROM c");
    const first = await query(db, SECRET, 'SELECT count(*) n, max(v) m FROM t');

    const b1 = await cli(['backup', '--incremental', ...common]);
    assert.equal(b1.code, 0, b1.stderr);
    assert.match(b1.stdout, new RegExp(`^backup: generation 1 on s3://${env.bucket}/${run}/story/ \\(full: \\d+ pages`));
    await query(db, SECRET, "UPDATE t SET v = 'second' WHERE id = 5000");
    const b2 = json(await cli(['backup', '--incremental', ...common, '--json']));
    assert.equal(b2.ok, true, JSON.stringify(b2));
    assert.equal(b2.generation, '2');
    assert.equal(b2.full, false);
    assert.ok(b2.pagesWritten >= 1 && b2.pagesWritten <= 6, `only the changed pages go up (${b2.pagesWritten})`);
    // Nothing written since: the newest generation holds the database as it is, and none is made.
    const same = json(await cli(['backup', '--incremental', ...common, '--json']));
    assert.equal(same.ok, true, JSON.stringify(same));
    assert.deepEqual([same.generation, same.target.action, same.pagesWritten], ['2', 'existing', 0]);
    assert.match((await cli(['backup', '--incremental', ...common])).stdout, /generation 2 on .* already holds the database as it is/);

    const list = json(await cli(['list', '--incremental', ...common, '--json']));
    assert.deepEqual(list.generations.map((g: { generation: string }) => g.generation), ['2', '1']);
    assert.deepEqual(list.problems, []);
    const text = await cli(['list', '--incremental', ...common]);
    assert.match(text.stdout, /generation +2 .*new page/);

    const v = json(await cli(['verify', '--generation', '1', ...common, '--json']));
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(v.generation, '1');
    // The database lost (a new device): its name names the store, the password opens the generations through the salt noted there.
    const gone = path.join(tempDir('cli-s3-inc-lost'), 'app.db');
    const lost = json(await cli(['verify', '--generation', 'latest', '--db', gone, '--backup-dir', url, '--kdf-iter', '1000', '--json']));
    assert.equal(lost.ok, true, JSON.stringify(lost));
    assert.equal(lost.generation, '2');
    const noDb = await cli(['list', '--incremental', '--backup-dir', url]);
    assert.equal(noDb.code, 2, noDb.stderr);
    assert.match(noDb.stderr, /needs --db/);
    const wrong = await cli(['verify', '--generation', '1', ...common, '--json'], { CIPHERKEEP_PASSWORD: 'not it' });
    assert.notEqual(wrong.code, 0);

    const restored = json(await cli(['restore', '--generation', '1', ...common, '--json']));
    assert.equal(restored.ok, true, JSON.stringify(restored));
    assert.deepEqual(await query(db, SECRET, 'SELECT count(*) n, max(v) m FROM t'), first);

    const rotated = json(await cli(['rotate-key', '--incremental', ...common, '--new-password-env', 'NEW_PW', '--json'], { NEW_PW: NEW }));
    assert.equal(rotated.ok, true, JSON.stringify(rotated));
    assert.equal(rotated.full, true);
    const after = json(await cli(['list', '--incremental', ...common, '--json'], { CIPHERKEEP_PASSWORD: NEW }));
    assert.equal(after.generations.length, 1, JSON.stringify(after.generations));
    assert.equal(after.generations[0].state, 'ok');
    assert.deepEqual(after.problems, []);

    for (const o of outputs) {
      assert.ok(!o.includes(SECRET) && !o.includes(NEW) && !o.includes(env.secretAccessKey), 'no secret in any output');
    }
  });
});
