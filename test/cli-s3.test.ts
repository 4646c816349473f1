/**
 * The real `cipherkeep` binary with an s3:// backup directory on the real
 * Swift (scripts/swift/swift.sh), under the runtime running the suite:
 * backup, list, latest, verify, prune, rotate-key and restore, with the AWS
 * variables; the same exit codes; the password and the secret key never in
 * the output.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from './timeouts.ts';
import { openDatabase } from '../src/node.ts';
import { S3Target } from '../src/targets/s3/index.ts';
import { cli as runCli, json, type Run } from './cli-run.ts';
import { tempDir } from './helpers.ts';
import { swift, useSwift } from './swift.ts';

const store = await useSwift();
const skip = store.skip;
const env = store.env!;
const SECRET = 'correct horse battery staple';
const run = `cli-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
const outputs: string[] = [];

const aws = () => ({
  AWS_ACCESS_KEY_ID: env.accessKeyId, AWS_SECRET_ACCESS_KEY: env.secretAccessKey, AWS_REGION: env.region,
  AWS_ENDPOINT_URL: env.endpoint, CIPHERKEEP_PASSWORD: SECRET,
});

async function cli(args: string[], extra: Record<string, string | undefined> = {}): Promise<Run> {
  const r = await runCli(args, { env: { ...aws(), ...extra } });
  outputs.push(r.stdout, r.stderr);
  return r;
}

if (!skip) {
  after(async () => {
    const all = new S3Target({ bucket: env.bucket, endpoint: env.endpoint, region: env.region, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey } });
    for (const o of await all.client.listObjects(`${run}/`)) await all.client.deleteObject(o.key);
  });
}
if (store.started) after(() => swift('stop'));

describe(`cipherkeep CLI with s3:// (${'Deno' in globalThis ? 'Deno' : 'Node'})`, { skip }, () => {
  it('the whole story on S3: backup, list, latest, verify, prune, rotate-key, restore', { timeout: 180_000 }, async () => {
    const dir = tempDir('cli-s3');
    const db = path.join(dir, 'app.db');
    const url = `s3://${env.bucket}/${run}/story`;
    const common = ['--db', db, '--backup-dir', url, '--kdf-iter', '1000'];
    assert.equal((await cli(['create', '--db', db, '--kdf-iter', '1000'])).code, 0);
    const database = await openDatabase(db, { password: SECRET, cipher: { kdfIterations: 1000 } });
    await database.exec("CREATE TABLE t (v); INSERT INTO t VALUES ('first')");
    await database.close();

    const backup = await cli(['backup', ...common]);
    assert.equal(backup.code, 0, backup.stderr);
    assert.match(backup.stdout, new RegExp(`^backup: s3://${env.bucket}/${run}/story/backup_\\d{8}_\\d{6}\\.db \\(`));
    assert.match(backup.stderr, /upload: /, 'upload progress on stderr');
    const again = json(await cli(['backup', ...common, '--json']));
    assert.equal(again.ok, true);
    assert.equal(again.existing, true);
    const forced = json(await cli(['backup', ...common, '--force', '--max-backups', '2', '--json']));
    assert.equal(forced.existing, false);
    assert.notEqual(forced.backupPath, again.backupPath);
    assert.equal(json(await cli(['list', '--backup-dir', url, '--json'])).backups.length, 2, '--max-backups is the bucket\'s');

    const listed = json(await cli(['list', '--backup-dir', url, '--json']));
    assert.equal(listed.backups.length, 2);
    const latest = await cli(['latest', '--backup-dir', url]);
    assert.equal(latest.code, 0, latest.stderr);
    const object = latest.stdout.trim();
    assert.equal(object, listed.backups[0].path);

    const verified = await cli(['verify', object, '--kdf-iter', '1000']);
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(verified.stdout, /^ok: s3:\/\/.* \(\d+ pages, 1 table\)/);
    assert.equal((await cli(['verify', object, '--kdf-iter', '1000'], { CIPHERKEEP_PASSWORD: 'wrong' })).code, 4);
    assert.equal((await cli(['verify', path.basename(object), '--backup-dir', url, '--kdf-iter', '1000'])).code, 0, 'a name with --backup-dir');

    const rotated = await cli(['rotate-key', ...common, '--new-password-env', 'NEW_PW', '--json'], { NEW_PW: 'new secret' });
    assert.equal(rotated.code, 0, rotated.stdout);
    const r = json(rotated);
    assert.equal(r.passwordChanged, true);
    const remaining = json(await cli(['list', '--backup-dir', url, '--json']));
    assert.deepEqual(remaining.backups.map((b: { path: string }) => b.path), [r.backupPath], 'only the new-password backup remains on S3');
    assert.equal((await cli(['verify', r.backupPath, '--kdf-iter', '1000'])).code, 4, 'the old password opens nothing there');

    const changed = await openDatabase(db, { password: 'new secret', cipher: { kdfIterations: 1000 } });
    await changed.exec("UPDATE t SET v = 'second'");
    await changed.close();
    const restored = await cli(['restore', r.backupPath, '--db', db, '--kdf-iter', '1000'], { CIPHERKEEP_PASSWORD: 'new secret' });
    assert.equal(restored.code, 0, restored.stderr);
    const back = await openDatabase(db, { password: 'new secret', cipher: { kdfIterations: 1000 }, readonly: true });
    assert.deepEqual(await back.query('SELECT v FROM t'), [{ v: 'first' }]);
    await back.close();

    const pruned = await cli(['prune', ...common, '--max-backups', '0', '--json']);
    assert.equal(pruned.code, 0, pruned.stdout);
    assert.equal(json(pruned).deleted, 1, '--max-backups 0 keeps none, as locally');
    assert.equal((await cli(['latest', '--backup-dir', url])).code, 1);
    assert.ok(fs.existsSync(path.join(dir, '.cipherkeep-staging')));
  });

  it('exit codes and typed errors: wrong credentials, a missing bucket, no credentials, a bad URL', { timeout: 60_000 }, async () => {
    const dir = tempDir('cli-s3-err');
    const db = path.join(dir, 'app.db');
    assert.equal((await cli(['create', '--db', db, '--kdf-iter', '1000'])).code, 0);
    const common = ['--db', db, '--kdf-iter', '1000', '--json'];
    const denied = await cli(['backup', ...common, '--backup-dir', `s3://${env.bucket}/${run}/denied`], { AWS_SECRET_ACCESS_KEY: 'not-the-key-9876' });
    assert.equal(denied.code, 1);
    assert.equal(json(denied).code, 'TARGET_DENIED');
    const missing = await cli(['list', '--backup-dir', 's3://no-such-bucket-here/x', '--json']);
    assert.equal(missing.code, 1);
    assert.equal(json(missing).code, 'TARGET_NOT_FOUND');
    const none = await cli(['list', '--backup-dir', `s3://${env.bucket}/x`, '--json'], { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined });
    assert.equal(none.code, 2);
    assert.match(json(none).error, /no credentials/);
    assert.equal((await cli(['list', '--backup-dir', 's3://', '--json'])).code, 2);
    assert.equal((await cli(['restore', `s3://${env.bucket}/${run}/none/backup_20200101_000000.db`, ...common])).code, 1);
    const gone = await cli(['verify', `s3://${env.bucket}/${run}/none/backup_20200101_000000.db`, '--json']);
    assert.equal(gone.code, 1);
    assert.equal(json(gone).code, 'TARGET_NOT_FOUND');
    for (const o of outputs) {
      assert.ok(!o.includes(SECRET) && !o.includes('not-the-key-9876') && !o.includes(env.secretAccessKey), 'no secret in any output');
    }
  });
});
