/**
 * The `cipherkeep` command line, for scripts, schedulers and CI on Node and
 * Deno. Each run prints its result once: human lines on stdout, or one JSON
 * object with --json; a failure is one line on stderr (in the JSON object
 * with --json), and the exit code says what kind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BackupService, NodeFileStore, openDatabase } from '../node.ts';
import { KEY_PROFILES, type KeyProfile } from '../backup/key-profiles.ts';
import type { BackupResult } from '../backup/backup-service.ts';
import { resolveSettings, type CipherSettings, type HashAlgorithm, type KeyMaterial } from '../engine/cipher.ts';
import { AlreadyExistsError, CipherkeepError, MissingDirectoryError, NotAFileError } from '../engine/errors.ts';
import { parseCommandLine, usage, wholeNumber, UsageError, type Flags } from './args.ts';
import { readRawKey, readSecret } from './secrets.ts';
import { progressReporter } from './progress.ts';
import { formatBytes, plural } from './format.ts';
import { isRemoteRun, runRemote } from './s3.ts';
import type { TargetSpec } from '../backup/targets.ts';
import * as generations from './generations.ts';
import { fromHex } from '../engine/bytes.ts';

/** Exit codes, documented in the README; distinct so scripts can act on them. */
export const EXIT = { OK: 0, FAILURE: 1, USAGE: 2, VERIFY_FAILED: 3, WRONG_PASSWORD: 4, LOCK_HELD: 5, NO_SPACE: 6 } as const;

const EXIT_FOR_CODE: Record<string, number> = {
  WRONG_KEY: EXIT.WRONG_PASSWORD,
  LOCK_TIMEOUT: EXIT.LOCK_HELD,
  STORAGE_FULL: EXIT.NO_SPACE,
  VERIFY_FAILED: EXIT.VERIFY_FAILED,
  CORRUPT: EXIT.VERIFY_FAILED,
  INVALID_ARGUMENT: EXIT.USAGE,
};

export const USAGE = `usage: cipherkeep <command> [options]

commands:
  create              create a new encrypted database            --db
  backup              back up (once per UTC day unless --force)  --db --backup-dir
  backup --incremental   a new generation of the page store (every run)  --db --backup-dir
  verify <file>       check a backup opens and passes quick_check
  verify --generation N|latest   check a generation, every page   --db --backup-dir
  list                list backups, newest first                 --backup-dir
  list --incremental  list generations, newest first             --db --backup-dir
  latest              print the newest backup                    --backup-dir
  prune               apply retention                            --db --backup-dir
  rotate-key          change the password, replace every backup  --db --backup-dir
  restore <file>      replace the database with a backup         --db --backup-dir
  restore --generation N|latest   replace it with a generation    --db --backup-dir

options:
  --db PATH                 the database file
  --backup-dir DIR          where backups live; or s3://bucket/prefix (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
                            AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL), where verify and restore
                            also take a backup's s3:// URL
  --prefix NAME             backup file prefix (default: backup)
  --max-backups N           keep the newest N backups (default: 1)
  --max-age-days N          delete backups older than N days, except the newest (default: 7)
  --force                   back up even if today's backup exists
  --incremental             backup, list: page-store generations (rotate-key: replace them with a full one);
                            with s3:// the bucket holds the generations
  --generation N|latest     verify, restore: this generation instead of a file
  --keep-generations N      keep the newest N generations (default: 30)
  --profile NAME            key profile: sqlcipher4 (default) or reference-app
  --kdf-iter N --page-size N --hmac SHA1|SHA256|SHA512 --kdf-algorithm SHA1|SHA256|SHA512
  --allow-weak-kdf          accept --kdf-iter below 1000 (makes guessing the password cheaper)
  --compat 3|4              SQLCipher major version's defaults (3: 64000 SHA1 iterations, 1 KiB pages, HMAC-SHA1)
  --plaintext-header N --salt HEX   a file whose first N (32) bytes are a readable SQLite header, and its
                            16-byte KDF salt (32 hex digits), which such a file does not hold
  --journal-mode delete|wal (create)
  --password-env NAME       read the password from this environment variable
  --password-fd N           read the password from the next line of file descriptor N (0 = stdin)
  --new-password-env NAME, --new-password-fd N   the new password (rotate-key; one fd can carry
                            both passwords, current first, one per line)
  --key-env NAME, --key-fd N          a raw 32-byte key (64 hex digits) instead of a password
  --new-key-env NAME, --new-key-fd N  the new raw key (rotate-key)
  --lock-timeout-ms N       wait this long for another backup of the same database (default: 60000)
  --json                    print one JSON object on stdout, failures included
  --quiet                   no progress on stderr
  -h, --help

Without --password-env/--password-fd the password is read from CIPHERKEEP_PASSWORD,
else prompted for (echo off) when stdin is a terminal. Passwords and keys are never taken as arguments.

exit codes: 0 ok, 1 failure, 2 bad usage, 3 verification failed, 4 wrong password,
            5 lock held by another process, 6 not enough space`;

/** How a command ends: what to print, and the exit code. */
interface Outcome {
  exit: number;
  /** Success: the line(s) for stdout. Failure: the message for stderr. */
  text: string;
  json: Record<string, unknown>;
}

export async function main(argv: string[]): Promise<number> {
  let flags: Flags = {};
  let outcome: Outcome;
  try {
    const parsed = parseCommandLine(argv);
    flags = parsed.flags;
    if (flags.help) {
      process.stdout.write(`${USAGE}\n`);
      return EXIT.OK;
    }
    if (parsed.positionals.length === 0) usage('no command given');
    const [command, ...args] = parsed.positionals as [string, ...string[]];
    outcome = await run(command, args, flags);
  } catch (e) {
    outcome = failure(e);
  }
  if (flags.json) process.stdout.write(`${JSON.stringify({ ok: outcome.exit === EXIT.OK, ...outcome.json })}\n`);
  else if (outcome.exit === EXIT.OK) process.stdout.write(`${outcome.text}\n`);
  else process.stderr.write(`cipherkeep: ${outcome.text}\n`);
  return outcome.exit;
}

function failure(e: unknown): Outcome {
  const code = e instanceof CipherkeepError ? e.code : 'FAILURE';
  const message = e instanceof Error ? e.message : String(e);
  const exit = e instanceof UsageError ? EXIT.USAGE : EXIT_FOR_CODE[code] ?? EXIT.FAILURE;
  return { exit, text: `${message}${e instanceof UsageError ? ' (see cipherkeep --help)' : ''}`, json: { code, error: message } };
}

const ok = (text: string, json: Record<string, unknown>): Outcome => ({ exit: EXIT.OK, text, json });

/** A BackupResult as an outcome; `success` becomes the one field `ok`. */
function fromResult(r: BackupResult, done: (r: BackupResult) => string, failed: string): Outcome {
  const { success, ...rest } = r;
  if (success) return ok(done(r), rest);
  return { exit: EXIT_FOR_CODE[r.errorCode ?? ''] ?? EXIT.FAILURE, text: `${failed}: ${r.error}`, json: { code: r.errorCode, ...rest } };
}

async function run(command: string, args: string[], flags: Flags): Promise<Outcome> {
  const need = (name: 'db' | 'backup-dir') => flags[name] ?? usage(`${command} needs --${name}`);
  const positional = () => (args.length === 1 ? args[0]! : usage(`${command} takes exactly one file${args.length ? `, not ${args.length}` : ''}`));
  if ((!['verify', 'restore'].includes(command) || flags.generation !== undefined) && args.length) usage(`${command} takes no file${flags.generation !== undefined ? ' with --generation' : ''} (got ${JSON.stringify(args[0])})`);
  if (flags.generation !== undefined && !['verify', 'restore'].includes(command)) usage(`--generation is for verify and restore, not ${command}`);
  if (flags.incremental && !['backup', 'list', 'rotate-key'].includes(command)) usage(`--incremental is for backup, list and rotate-key, not ${command}`);
  const keepGenerations = wholeNumber(flags['keep-generations'], 'keep-generations');
  // Every option is checked before anything is read or written.
  const profile = keyProfile(flags);
  const limits = {
    maxBackups: wholeNumber(flags['max-backups'], 'max-backups'),
    maxAgeDays: wholeNumber(flags['max-age-days'], 'max-age-days'),
    lockTimeoutMs: wholeNumber(flags['lock-timeout-ms'], 'lock-timeout-ms'),
  };
  const passphrase = (prompt = 'password: ') => readSecret({
    env: flags['password-env'] ?? (flags['password-fd'] === undefined ? envIfSet('CIPHERKEEP_PASSWORD') : undefined),
    fd: flags['password-fd'],
    prompt,
    missing: 'no password: set CIPHERKEEP_PASSWORD, or use --password-env NAME or --password-fd N',
  });
  // A raw key (--key-env/--key-fd) where one is given, else the password.
  const secretOf = async (which: 'current' | 'new', prompt: string): Promise<KeyMaterial> => {
    const [env, fd] = which === 'current' ? [flags['key-env'], flags['key-fd']] : [flags['new-key-env'], flags['new-key-fd']];
    if (env !== undefined && fd !== undefined) usage(`give --${which === 'new' ? 'new-' : ''}key-env or --${which === 'new' ? 'new-' : ''}key-fd, not both`);
    if (env !== undefined || fd !== undefined) return { key: readRawKey({ env, fd, what: which === 'new' ? 'new key' : 'key' }) };
    if (which === 'current') return { password: await passphrase(prompt) };
    return { password: await readSecret({
      env: flags['new-password-env'], fd: flags['new-password-fd'], prompt, confirm: true,
      missing: 'no new password: use --new-password-env NAME or --new-password-fd N (or --new-key-env/--new-key-fd)',
    }) };
  };
  const password = (prompt = 'password: ') => secretOf('current', prompt);
  const onProgress = progressReporter(flags.quiet || flags.json ? 'none' : process.stderr.isTTY ? 'bar' : 'lines');
  const service = (options: { db?: string; secret?: KeyMaterial; backupDir?: string; targets?: TargetSpec[]; maxBackups?: number; incremental?: boolean } = {}) =>
    new BackupService({
      databasePath: options.db ?? databasePath(need('db')),
      backupDir: options.backupDir ?? flags['backup-dir'] ?? '.',
      // list, latest and prune never decrypt anything, so they need no password
      // (and list and latest no database: its path only names the lock).
      ...(options.secret ?? { password: 'not-needed-for-this-command' }),
      prefix: flags.prefix,
      ...limits,
      keyProfile: profile,
      ...(options.targets ? { targets: options.targets, maxBackups: options.maxBackups } : {}),
      incremental: options.incremental ?? !!flags.incremental,
      ...(keepGenerations !== undefined ? { generations: { keepLast: keepGenerations } } : {}),
    });
  const newPassword = () => secretOf('new', 'new password: ');
  if (command !== 'create' && isRemoteRun(flags['backup-dir'], args)) {
    return runRemote({ command, args, backupDir: flags['backup-dir'], db: flags.db && databasePath(flags.db), force: flags.force, limits,
      incremental: !!flags.incremental, generation: flags.generation, keepGenerations, service, password, newPassword, onProgress,
      opensWith: (db, pw) => opensWith(profile, db, pw), exit: EXIT, exitFor: (code) => EXIT_FOR_CODE[code ?? ''] ?? EXIT.FAILURE });
  }
  const fromGenerations = (g: generations.GenerationOutcome): Outcome =>
    g.ok ? ok(g.text, g.json) : { exit: EXIT_FOR_CODE[g.code ?? ''] ?? EXIT.FAILURE, text: g.text, json: { code: g.code, ...g.json } };

  switch (command) {
    case 'create': {
      const db = databasePath(need('db'));
      if (fs.existsSync(db)) throw new AlreadyExistsError(`already exists: ${db}`);
      const mode = flags['journal-mode'] ?? profile.journalMode;
      if (mode !== 'delete' && mode !== 'wal') usage('--journal-mode is delete or wal');
      const secret: KeyMaterial = flags['key-env'] !== undefined || flags['key-fd'] !== undefined ? await password() : { password: await readSecret({
        env: flags['password-env'] ?? (flags['password-fd'] === undefined ? envIfSet('CIPHERKEEP_PASSWORD') : undefined),
        fd: flags['password-fd'], prompt: 'new password: ', confirm: true,
        missing: 'no password: set CIPHERKEEP_PASSWORD, or use --password-env NAME or --password-fd N',
      }) };
      // The profile's sidecars (reference-app: a fresh .salt, 0600) exist before the key that depends on them.
      const files = new NodeFileStore();
      if (profile.name === 'reference-app' && secret.key !== undefined) usage('the reference-app profile takes a password, not a raw key');
      await profile.initialize?.(files, db);
      let created: string;
      try {
        const database = await openDatabase(db, { ...(await profile.keyFor(secret, files, db)), create: true, cipher: profile.cipher, journalMode: mode });
        created = database.path;
        await database.close();
      } catch (e) {
        for (const s of profile.sidecars) await files.remove(`${db}${s}`).catch(() => {});
        throw e;
      }
      return ok(`created ${created} (encrypted, SQLCipher ${resolveSettings(profile.cipher).compatibility} format, journal mode ${mode})`, { path: created, journalMode: mode });
    }
    case 'backup': {
      need('backup-dir');
      const svc = service({ secret: await password() });
      return fromResult(await svc.createBackup({ force: flags.force, onProgress }),
        (r) => r.generation !== undefined
          ? `backup: generation ${r.generation} in ${r.backupPath} (${r.full ? 'full' : 'incremental'}: ${plural(r.pagesWritten ?? 0, 'page')}, ${formatBytes(r.sizeBytes)} written)`
          : `backup: ${r.backupPath} (${formatBytes(r.sizeBytes)})${r.existing ? ' — already backed up today' : ''}`, 'backup failed');
    }
    case 'verify': {
      if (flags.generation !== undefined) {
        need('backup-dir');
        return fromGenerations(await generations.verifyGeneration(service({ secret: await password() }), flags.generation, onProgress));
      }
      const file = positional();
      // With --db, the file is checked as that database's backup (a profile may key it by the database's sidecars).
      const r = await service({ db: flags.db ?? file, secret: await password() }).verifyBackup(file, { onProgress });
      if (r.ok) {
        const notes = (r.notes ?? []).map((note) => `\nnote: ${note}`).join('');
        return ok(`ok: ${file} (${plural(r.pages, 'page')}, ${plural(r.tables, 'table')})${notes}`, { path: file, pages: r.pages, tables: r.tables, ...(r.notes ? { notes: r.notes } : {}) });
      }
      // A plaintext-header file checked without --plaintext-header/--salt is a missing option, not a bad file.
      const exit = r.reason === 'wrong-key' ? EXIT.WRONG_PASSWORD : r.reason === 'plaintext-header' ? EXIT.USAGE : EXIT.VERIFY_FAILED;
      return { exit, text: `verification failed (${r.reason}): ${r.detail}`, json: { code: 'VERIFY_FAILED', path: file, reason: r.reason, error: r.detail } };
    }
    case 'list': {
      if (flags.incremental) {
        existingDir(need('backup-dir'), 'backup directory');
        return fromGenerations(await generations.listGenerations(service({ secret: await password() })));
      }
      const dir = existingDir(need('backup-dir'), 'backup directory');
      const list = await service({ db: flags.db ?? dir }).listBackups();
      const lines = list.map((b) => `${b.createdAt}  ${formatBytes(b.sizeBytes).padStart(10)}  ${b.path}`);
      return ok(lines.join('\n') || '(no backups)', { backups: list });
    }
    case 'latest': {
      const dir = existingDir(need('backup-dir'), 'backup directory');
      const b = await service({ db: flags.db ?? dir }).getLatestBackup();
      if (!b) return { exit: EXIT.FAILURE, text: `no backups in ${flags['backup-dir']}`, json: { code: 'NO_BACKUPS', error: 'no backups', latest: null } };
      return ok(b.path, { latest: b });
    }
    case 'prune': {
      existingDir(need('backup-dir'), 'backup directory');
      const deleted = await service().cleanupOldBackups({ throwOnError: true });
      return ok(`deleted ${plural(deleted, 'backup')}`, { deleted });
    }
    case 'rotate-key': {
      need('backup-dir');
      const db = databasePath(need('db'));
      const current = await password('current password: ');
      const next = await secretOf('new', 'new password: ');
      const r = await service({ secret: current }).changePassword(next, { onProgress });
      // Whether the password changed is what the file says: it opens with the new one or it does not.
      const changed = r.success || (await opensWith(profile, db, next));
      const outcome = fromResult(r, (x) => `password changed; new backup: ${x.backupPath}${x.generation ? ` generation ${x.generation}` : ''} (${formatBytes(x.sizeBytes)})`,
        changed ? 'password changed, but the new backup failed' : 'password not changed');
      return { ...outcome, json: { passwordChanged: changed, ...outcome.json } };
    }
    case 'restore': {
      if (flags.generation !== undefined) {
        need('backup-dir');
        return fromGenerations(await generations.restoreGeneration(service({ secret: await password() }), need('db'), flags.generation, onProgress));
      }
      const file = positional();
      need('backup-dir');
      const svc = service({ secret: await password() });
      const r = await svc.restoreBackup(file, { onProgress });
      if (r.success) return ok(`restored ${flags.db} from ${file}; the replaced database is kept as ${r.preRestorePath ?? '(none)'}${(r.notes ?? []).map((x) => `\nnote: ${x}`).join('')}`, { preRestorePath: r.preRestorePath, ...(r.notes ? { notes: r.notes } : {}) });
      let code = r.errorCode;
      if (code === 'VERIFY_FAILED') {
        // Refused: say whether it was the password (exit 4) or the file (exit 3).
        const check = await svc.verifyBackup(file);
        if (!check.ok && check.reason === 'wrong-key') code = 'WRONG_KEY';
      }
      return { exit: EXIT_FOR_CODE[code ?? ''] ?? EXIT.FAILURE, text: `restore failed: ${r.error}`, json: { code, error: r.error } };
    }
    default:
      return usage(`unknown command: ${command}`);
  }
}

/** The --db path, whose directory must exist (the lock file and the backups' source live there). */
function databasePath(db: string): string {
  const dir = path.dirname(path.resolve(db));
  if (!fs.existsSync(dir)) throw new MissingDirectoryError(`the directory of --db does not exist: ${dir}`);
  return db;
}

/** A directory that must already exist: a typo is an error, not an empty list. */
function existingDir(dir: string, what: string): string {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    throw new MissingDirectoryError(`no such ${what}: ${dir}`);
  }
  if (!stat.isDirectory()) throw new NotAFileError(`not a directory: ${dir}`);
  return dir;
}

async function opensWith(profile: KeyProfile, db: string, secret: KeyMaterial): Promise<boolean> {
  try {
    const material = await profile.keyFor(secret, new NodeFileStore(), db);
    await (await openDatabase(db, { ...material, cipher: profile.cipher, readonly: true })).close();
    return true;
  } catch {
    return false;
  }
}

function envIfSet(name: string): string | undefined {
  return process.env[name] ? name : undefined;
}

function keyProfile(flags: Flags): KeyProfile {
  const name = flags.profile ?? 'sqlcipher4';
  const base = KEY_PROFILES[name as keyof typeof KEY_PROFILES] ?? usage(`unknown --profile ${name} (sqlcipher4 or reference-app)`);
  const hash = (v: string | undefined, flag: string): HashAlgorithm | undefined => {
    if (v === undefined) return undefined;
    if (!['SHA1', 'SHA256', 'SHA512'].includes(v.toUpperCase())) usage(`--${flag} is SHA1, SHA256 or SHA512`);
    return v.toUpperCase() as HashAlgorithm;
  };
  const cipher: CipherSettings = { ...base.cipher };
  const set = <K extends keyof CipherSettings>(k: K, v: CipherSettings[K] | undefined) => v !== undefined && (cipher[k] = v);
  set('kdfIterations', wholeNumber(flags['kdf-iter'], 'kdf-iter', 1));
  set('pageSize', wholeNumber(flags['page-size'], 'page-size', 1));
  set('hmacAlgorithm', hash(flags.hmac, 'hmac'));
  set('kdfAlgorithm', hash(flags['kdf-algorithm'], 'kdf-algorithm'));
  if (flags['allow-weak-kdf']) cipher.allowWeakKdf = true;
  if (flags.compat !== undefined) {
    if (flags.compat !== '3' && flags.compat !== '4') usage(`--compat is 3 or 4 (SQLCipher's major version), not ${JSON.stringify(flags.compat)}`);
    // The version's defaults, then whatever else was given by hand.
    for (const k of ['kdfIterations', 'pageSize', 'hmacAlgorithm', 'kdfAlgorithm'] as const) if (cipher[k] === base.cipher[k]) delete cipher[k];
    cipher.compatibility = Number(flags.compat) as 3 | 4;
    set('kdfIterations', wholeNumber(flags['kdf-iter'], 'kdf-iter', 1));
    set('pageSize', wholeNumber(flags['page-size'], 'page-size', 1));
    set('hmacAlgorithm', hash(flags.hmac, 'hmac'));
    set('kdfAlgorithm', hash(flags['kdf-algorithm'], 'kdf-algorithm'));
  }
  set('plaintextHeaderSize', wholeNumber(flags['plaintext-header'], 'plaintext-header'));
  if (flags.salt !== undefined) {
    if (!/^[0-9a-fA-F]{32}$/.test(flags.salt)) usage('--salt is the 16-byte KDF salt as 32 hexadecimal digits');
    cipher.salt = fromHex(flags.salt);
  }
  try {
    resolveSettings(cipher); // bad settings are bad usage, whatever the command
  } catch (e) {
    usage((e as Error).message.replace('allowWeakKdf: true (CLI: --allow-weak-kdf)', '--allow-weak-kdf'));
  }
  return { ...base, cipher };
}
