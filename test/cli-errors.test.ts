/**
 * The CLI as a new user meets it: every mistake gets one clear message on
 * stderr (or one JSON object with --json) and the exit code of its kind;
 * nothing claims a change that did not happen; passwords come one line at a
 * time from a descriptor that may stay open.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { sqlcipher4 } from '../src/index.ts';
import { BackupService, openDatabase } from '../src/node.ts';
import { cli, json, startCli, type CliOptions, type Run } from './cli-run.ts';
import { sha256, tempDir, withNative } from './helpers.ts';

const SECRET = 'Tr0ub4dor&3 cli errors';
const NEW_SECRET = 'Tr0ub4dor&3 the new one';
const FAST = ['--kdf-iter', '1000'];
const outputs: string[] = [];

async function run(args: string[], options: CliOptions = {}): Promise<Run> {
  const r = await cli(args, { ...options, env: { CIPHERKEEP_PASSWORD: SECRET, ...options.env } });
  outputs.push(r.stdout, r.stderr);
  return r;
}

/** A run that must end within `ms` even though its stdin stays open. */
async function runWithOpenStdin(args: string[], input: string, ms = 30_000): Promise<Run> {
  const { child, done } = startCli(args, { input, keepStdinOpen: true, env: { CIPHERKEEP_PASSWORD: undefined } });
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const r = await done;
  clearTimeout(timer);
  child.stdin.end();
  outputs.push(r.stdout, r.stderr);
  return r;
}

/** A failure is one line on stderr and nothing on stdout. */
function assertOneError(r: Run, exit: number, message: RegExp): void {
  assert.equal(r.code, exit, `exit ${exit}: ${r.stderr}`);
  assert.equal(r.stdout, '', 'nothing on stdout');
  const lines = r.stderr.trimEnd().split('\n').filter((l) => !/^(export|verify|copy): /.test(l));
  assert.equal(lines.length, 1, `one message: ${r.stderr}`);
  assert.match(lines[0]!, /^cipherkeep: /);
  assert.match(lines[0]!, message);
}

async function setup() {
  const dir = tempDir('cli-errors');
  const db = path.join(dir, 'app.db');
  const backups = path.join(dir, 'backups');
  const created = await run(['create', '--db', db, ...FAST]);
  assert.equal(created.code, 0, created.stderr);
  return { dir, db, backups, common: ['--db', db, '--backup-dir', backups, ...FAST] };
}

const opens = (db: string, password: string) =>
  openDatabase(db, { password, cipher: { kdfIterations: 1000 } }).then((d) => d.close().then(() => true), () => false);

describe(`cipherkeep CLI errors (${'Deno' in globalThis ? 'Deno' : 'Node'})`, { timeout: 240_000 }, () => {
  it('usage errors: exit 2, one message of ours each, quotes balanced', async () => {
    const { common } = await setup();
    const cases: [string[], RegExp][] = [
      [['prune', ...common, '--max-backups', '-1'], /--max-backups must be a whole number \(0 or more\), not "-1"/],
      [['backup', ...common, '--unknown-flag'], /unknown option: --unknown-flag/],
      [['backup', ...common, '-x'], /unknown option: -x/],
      [['backup', ...common, '--prefix'], /--prefix needs a value/],
      [['backup', '--db', '--force', '--backup-dir', 'b'], /--db needs a value \(got the option --force\)/],
      [['backup', ...common, '--force=yes'], /--force takes no value/],
      [['backup', ...common, '--db', 'other.db'], /--db is given more than once/],
      [['backup', ...common, '--max-age-days', 'many'], /--max-age-days must be a whole number/],
      [['bogus'], /unknown command: bogus/],
      [[], /no command given/],
      [['verify'], /verify takes exactly one file/],
      [['list', '--backup-dir', '.', 'extra'], /list takes no file/],
      [['backup', '--db', 'x.db', '--backup-dir', 'b', '--kdf-iter', '0'], /--kdf-iter must be a whole number of at least 1/],
      [['backup', ...common, '--profile', 'nope'], /unknown --profile nope/],
      [['backup', ...common, '--hmac', 'MD5'], /--hmac is SHA1, SHA256 or SHA512/],
      [['backup', '--backup-dir', 'b'], /backup needs --db/],
    ];
    for (const [args, message] of cases) {
      const r = await run(args);
      assertOneError(r, 2, message);
      assert.match(r.stderr, /\(see cipherkeep --help\)\n$/);
      assert.doesNotMatch(r.stderr, /ambiguous|parseArgs|ERR_/);
      assert.equal((r.stderr.match(/'/g) ?? []).length % 2, 0, `balanced quotes: ${r.stderr}`);
    }
  });

  it('a KDF below 1000 iterations needs --allow-weak-kdf, which names the risk', async () => {
    const dir = tempDir('cli-errors');
    const weak = path.join(dir, 'weak.db');
    const refused = await run(['create', '--db', weak, '--kdf-iter', '1']);
    assertOneError(refused, 2, /kdfIterations 1 is below the minimum of 1000: it makes guessing the password 256000 times cheaper than the default; pass --allow-weak-kdf/);
    assert.equal(fs.existsSync(weak), false);
    const allowed = await run(['create', '--db', weak, '--kdf-iter', '1', '--allow-weak-kdf']);
    assert.equal(allowed.code, 0, allowed.stderr);
    const pw = SECRET.replace(/'/g, "''");
    assert.deepEqual(withNative(weak, [`key = '${pw}'`, 'kdf_iter = 1'], (n) => n.prepare('PRAGMA user_version').all()), [{ user_version: 0 }]);
  });

  it('one message per failure, on stderr; --json carries it in one object with `ok` alone', async () => {
    const { common } = await setup();
    const human = await run(['backup', ...common], { env: { CIPHERKEEP_PASSWORD: 'wrong password' } });
    assertOneError(human, 4, /^cipherkeep: backup failed: wrong key/);
    const failed = await run(['backup', ...common, '--json'], { env: { CIPHERKEEP_PASSWORD: 'wrong password' } });
    assert.equal(failed.code, 4);
    assert.equal(failed.stderr, '', 'with --json nothing else is printed');
    const object = json(failed);
    assert.equal(object.ok, false);
    assert.equal(object.code, 'WRONG_KEY');
    assert.match(object.error, /wrong key/);
    assert.equal('success' in object, false, 'one field says whether it worked');
    const good = json(await run(['backup', ...common, '--json']));
    assert.equal(good.ok, true);
    assert.equal('success' in good, false);
    const usage = await run(['backup', ...common, '--max-backups', 'x', '--json']);
    assert.equal(usage.code, 2);
    assert.equal(usage.stderr, '');
    assert.equal(json(usage).code, 'INVALID_ARGUMENT');
  });

  it('prune exits 5 when another process holds the lock (not "deleted 0")', async () => {
    const { common, db, backups } = await setup();
    assert.equal((await run(['backup', ...common])).code, 0);
    // This process holds the database's backup lock: its backup waits in onProgress.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let holding!: () => void;
    const inside = new Promise<void>((r) => (holding = r));
    const svc = new BackupService({ databasePath: db, password: SECRET, backupDir: backups, keyProfile: { ...sqlcipher4, cipher: { kdfIterations: 1000 } } });
    const backup = svc.createBackup({ force: true, onProgress: async () => (holding(), held) });
    await inside;
    try {
      const r = await run(['prune', ...common, '--lock-timeout-ms', '300']);
      assertOneError(r, 5, /lock/i);
      assert.doesNotMatch(r.stdout + r.stderr, /deleted/);
      const j = await run(['prune', ...common, '--lock-timeout-ms', '300', '--json']);
      assert.equal(j.code, 5);
      assert.equal(json(j).code, 'LOCK_TIMEOUT');
    } finally {
      release();
    }
    assert.equal((await backup).success, true);
    const pruned = await run(['prune', ...common]);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.match(pruned.stdout, /^deleted \d+ backups?\n$/);
  });

  it('--password-fd reads one line, from a pipe that stays open; rotate-key takes both passwords from one fd', async () => {
    const { common, db } = await setup();
    const backup = await runWithOpenStdin(['backup', ...common, '--password-fd', '0'], `${SECRET}\n`);
    assert.equal(backup.code, 0, backup.stderr);
    const rotated = await runWithOpenStdin(
      ['rotate-key', ...common, '--password-fd', '0', '--new-password-fd', '0', '--json'], `${SECRET}\r\n${NEW_SECRET}\n`);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.equal(json(rotated).passwordChanged, true);
    assert.equal(await opens(db, NEW_SECRET), true, 'the second line is the new password');
    const empty = await runWithOpenStdin(['backup', ...common, '--password-fd', '0'], '\n');
    assertOneError(empty, 2, /nothing to read as a password on file descriptor 0/);
  });

  it('rotate-key: a failure says the password did not change, and a missing new password is named as such', async () => {
    const { common, db, dir } = await setup();
    // Wrong current password: exit 4, nothing changed.
    const before = sha256(fs.readFileSync(db));
    const wrong = await run(['rotate-key', ...common, '--new-password-env', 'NEW_PW'], { env: { CIPHERKEEP_PASSWORD: 'not it', NEW_PW: NEW_SECRET } });
    assertOneError(wrong, 4, /^cipherkeep: password not changed: wrong key/);
    assert.equal(sha256(fs.readFileSync(db)), before);
    assert.equal(await opens(db, SECRET), true);
    // A plain SQLite file: exit 1, nothing changed.
    const plain = path.join(dir, 'plain.db');
    withNative(plain, [], (n) => n.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)'));
    const plainBefore = sha256(fs.readFileSync(plain));
    const r = await run(['rotate-key', '--db', plain, '--backup-dir', path.join(dir, 'b2'), ...FAST, '--new-password-env', 'NEW_PW', '--json'], { env: { NEW_PW: NEW_SECRET } });
    assert.equal(r.code, 1, r.stdout);
    assert.deepEqual({ ok: json(r).ok, passwordChanged: json(r).passwordChanged, code: json(r).code }, { ok: false, passwordChanged: false, code: 'NOT_ENCRYPTED' });
    assert.match(json(r).error, /plain SQLite/);
    const human = await run(['rotate-key', '--db', plain, '--backup-dir', path.join(dir, 'b2'), ...FAST, '--new-password-env', 'NEW_PW'], { env: { NEW_PW: NEW_SECRET } });
    assertOneError(human, 1, /^cipherkeep: password not changed: not an encrypted database/);
    assert.doesNotMatch(human.stderr, /password changed/);
    assert.equal(sha256(fs.readFileSync(plain)), plainBefore);
    // No new password given, CIPHERKEEP_PASSWORD set (the current one): the message asks for the new one.
    const missing = await run(['rotate-key', ...common]);
    assertOneError(missing, 2, /no new password: use --new-password-env NAME or --new-password-fd N/);
    assert.doesNotMatch(missing.stderr, /CIPHERKEEP_PASSWORD/);
  });

  it('restore with a wrong password exits 4 (a damaged backup still 3)', async () => {
    const { common, db, backups } = await setup();
    const filled = await openDatabase(db, { password: SECRET, cipher: { kdfIterations: 1000 } });
    await filled.exec("CREATE TABLE t (v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 300) INSERT INTO t SELECT hex(randomblob(40)) FROM c");
    await filled.close();
    const made = json(await run(['backup', ...common, '--json']));
    const before = sha256(fs.readFileSync(db));
    const wrong = await run(['restore', ...common, made.backupPath], { env: { CIPHERKEEP_PASSWORD: 'not it' } });
    assertOneError(wrong, 4, /^cipherkeep: restore failed: .*wrong-key/);
    const bytes = fs.readFileSync(made.backupPath);
    bytes[bytes.length - 100]! ^= 0xff;
    const damaged = path.join(backups, 'damaged.db');
    fs.writeFileSync(damaged, bytes);
    assertOneError(await run(['restore', ...common, damaged]), 3, /restore failed/);
    assert.equal(sha256(fs.readFileSync(db)), before, 'nothing restored');
  });

  it('a missing directory is an error: list/latest/prune of a mistyped --backup-dir, a --db whose directory is missing', async () => {
    const { common, dir } = await setup();
    for (const command of ['list', 'latest', 'prune']) {
      const r = await run([command, ...common.slice(0, 2), '--backup-dir', path.join(dir, 'nodir')]);
      assertOneError(r, 1, /no such backup directory: .*nodir/);
    }
    const r = await run(['backup', '--db', path.join(dir, 'missing', 'app.db'), '--backup-dir', path.join(dir, 'b'), '--json']);
    assert.equal(r.code, 1);
    assert.equal(json(r).code, 'MISSING_DIRECTORY');
    assert.match(json(r).error, /the directory of --db does not exist/);
    assert.doesNotMatch(r.stdout, /ENOENT|backup-lock/);
    const exists = await run(['create', ...common.slice(0, 2), '--json']);
    assert.equal(exists.code, 1);
    assert.equal(json(exists).code, 'ALREADY_EXISTS');
  });

  it('words and sizes: "1 page", "1 table", KB for small files, in output and progress', async () => {
    const { common, db } = await setup();
    const filled = await openDatabase(db, { password: SECRET, cipher: { kdfIterations: 1000 } });
    await filled.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1)');
    await filled.close();
    const backup = await run(['backup', ...common]);
    assert.equal(backup.code, 0, backup.stderr);
    assert.match(backup.stdout, /^backup: .* \(8\.0 KB\)\n$/);
    assert.match(backup.stderr, /^export: 8\.0 KB\nverify: 8\.0 KB\n$/, 'progress lines in KB, not "0.0 MB"');
    const path_ = backup.stdout.match(/^backup: (.*) \(/)![1]!;
    const verified = await run(['verify', path_, ...FAST, '--quiet']);
    assert.equal(verified.stdout, `ok: ${path_} (2 pages, 1 table)\n`);
    const pruned = await run(['prune', ...common, '--max-backups', '0']);
    assert.equal(pruned.stdout, 'deleted 1 backup\n');
  });

  it('never prints a password', () => {
    assert.ok(outputs.length > 40);
    const all = outputs.join('\n');
    assert.equal(all.includes(SECRET), false);
    assert.equal(all.includes(NEW_SECRET), false);
    assert.equal(all.includes('Tr0ub4dor'), false);
  });
});
