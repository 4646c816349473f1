/**
 * The `cipherkeep` command line, for scripts, schedulers and CI on Node and
 * Deno. Arguments are parsed with node:util's parseArgs: the commands are few
 * and flat, and a dependency would buy nothing but size.
 */
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import { BackupService, openDatabase } from '../node.ts';
import { KEY_PROFILES, type KeyProfile } from '../backup/key-profiles.ts';
import type { BackupResult } from '../backup/backup-service.ts';
import type { CipherSettings, HashAlgorithm } from '../engine/cipher.ts';
import { CipherkeepError, InvalidArgumentError } from '../engine/errors.ts';
import { readSecret } from './secrets.ts';
import { progressReporter } from './progress.ts';

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
  verify <file>       check a backup opens and passes quick_check
  list                list backups, newest first                 --backup-dir
  latest              print the newest backup                    --backup-dir
  prune               apply retention                            --db --backup-dir
  rotate-key          change the password, replace every backup  --db --backup-dir
  restore <file>      replace the database with a backup         --db --backup-dir

options:
  --db PATH                 the database file
  --backup-dir DIR          where backups live
  --prefix NAME             backup file prefix (default: backup)
  --max-backups N           keep the newest N backups (default: 1)
  --max-age-days N          delete backups older than N days, except the newest (default: 7)
  --force                   back up even if today's backup exists
  --profile NAME            key profile: sqlcipher4 (default) or reference-app
  --kdf-iter N --page-size N --hmac SHA1|SHA256|SHA512 --kdf-algorithm SHA1|SHA256|SHA512
  --journal-mode delete|wal (create)
  --password-env NAME       read the password from this environment variable
  --password-fd N           read the password from file descriptor N (0 = stdin)
  --new-password-env NAME, --new-password-fd N   the new password (rotate-key)
  --lock-timeout-ms N       wait this long for another backup of the same database (default: 60000)
  --json                    print one JSON object on stdout
  --quiet                   no progress on stderr
  -h, --help

Without --password-env/--password-fd the password is read from CIPHERKEEP_PASSWORD,
else prompted for (echo off) when stdin is a terminal. Passwords are never taken as arguments.

exit codes: 0 ok, 1 failure, 2 bad usage, 3 verification failed, 4 wrong password,
            5 lock held by another process, 6 not enough space`;

const OPTIONS = {
  db: { type: 'string' },
  'backup-dir': { type: 'string' },
  prefix: { type: 'string' },
  'max-backups': { type: 'string' },
  'max-age-days': { type: 'string' },
  force: { type: 'boolean' },
  profile: { type: 'string' },
  'kdf-iter': { type: 'string' },
  'page-size': { type: 'string' },
  hmac: { type: 'string' },
  'kdf-algorithm': { type: 'string' },
  'journal-mode': { type: 'string' },
  'password-env': { type: 'string' },
  'password-fd': { type: 'string' },
  'new-password-env': { type: 'string' },
  'new-password-fd': { type: 'string' },
  'lock-timeout-ms': { type: 'string' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Flags = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

class UsageError extends InvalidArgumentError {}

export async function main(argv: string[]): Promise<number> {
  let flags: Flags;
  let positionals: string[];
  try {
    ({ values: flags, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (e) {
    process.stderr.write(`cipherkeep: ${(e as Error).message} (see cipherkeep --help)\n`);
    return EXIT.USAGE;
  }
  if (flags.help || positionals.length === 0) {
    (flags.help ? process.stdout : process.stderr).write(`${USAGE}\n`);
    return flags.help ? EXIT.OK : EXIT.USAGE;
  }
  const [command, ...args] = positionals as [string, ...string[]];
  const out = (human: string, json: object) => process.stdout.write(flags.json ? `${JSON.stringify(json)}\n` : `${human}\n`);
  try {
    return await run(command, args, flags, out);
  } catch (e) {
    const code = e instanceof CipherkeepError ? e.code : 'FAILURE';
    const message = e instanceof Error ? e.message : String(e);
    if (flags.json) out('', { ok: false, code, error: message });
    process.stderr.write(`cipherkeep: ${message}${e instanceof UsageError ? ' (see cipherkeep --help)' : ''}\n`);
    return EXIT_FOR_CODE[code] ?? EXIT.FAILURE;
  }
}

async function run(command: string, args: string[], flags: Flags, out: (human: string, json: object) => void): Promise<number> {
  const need = (name: 'db' | 'backup-dir') => flags[name] ?? usage(`${command} needs --${name}`);
  const positional = () => (args.length === 1 ? args[0]! : usage(`${command} takes exactly one file`));
  const profile = keyProfile(flags);
  const password = (prompt = 'password: ') =>
    readSecret({ env: flags['password-env'] ?? (flags['password-fd'] === undefined ? envIfSet('CIPHERKEEP_PASSWORD') : undefined), fd: flags['password-fd'], prompt });
  const onProgress = progressReporter(flags.quiet || flags.json ? 'none' : process.stderr.isTTY ? 'bar' : 'lines');
  const service = async (options: { db?: string; secret?: string } = {}) =>
    new BackupService({
      databasePath: options.db ?? need('db'),
      backupDir: flags['backup-dir'] ?? '.',
      // list, latest and prune never decrypt anything, so they need no password
      // (and list and latest no database: its path only names the lock).
      password: options.secret ?? 'not-needed-for-this-command',
      prefix: flags.prefix,
      maxBackups: int(flags['max-backups'], 'max-backups'),
      maxAgeDays: int(flags['max-age-days'], 'max-age-days'),
      lockTimeoutMs: int(flags['lock-timeout-ms'], 'lock-timeout-ms'),
      keyProfile: profile,
    });
  const finish = (r: BackupResult, what: string) => {
    out(r.success ? `${what}: ${r.backupPath} (${r.sizeBytes} bytes)${r.existing ? ' — already backed up today' : ''}` : `${what} failed: ${r.error}`, { ok: r.success, ...r });
    if (!r.success) process.stderr.write(`cipherkeep: ${r.error}\n`);
    return r.success ? EXIT.OK : EXIT_FOR_CODE[r.errorCode ?? ''] ?? EXIT.FAILURE;
  };

  switch (command) {
    case 'create': {
      const db = need('db');
      if (fs.existsSync(db)) throw new CipherkeepError(`already exists: ${db}`);
      const secret = await readSecret({ env: flags['password-env'] ?? (flags['password-fd'] === undefined ? envIfSet('CIPHERKEEP_PASSWORD') : undefined), fd: flags['password-fd'], prompt: 'new password: ', confirm: true });
      const mode = flags['journal-mode'] ?? profile.journalMode;
      if (mode !== 'delete' && mode !== 'wal') usage('--journal-mode is delete or wal');
      const database = await openDatabase(db, { password: secret, create: true, cipher: profile.cipher, journalMode: mode });
      const path = database.path;
      await database.close();
      out(`created ${path} (encrypted, SQLCipher 4 format, journal mode ${mode})`, { ok: true, path, journalMode: mode });
      return EXIT.OK;
    }
    case 'backup':
      need('backup-dir');
      return finish(await (await service({ secret: await password() })).createBackup({ force: flags.force, onProgress }), 'backup');
    case 'verify': {
      const file = positional();
      const r = await (await service({ db: file, secret: await password() })).verifyBackup(file, { onProgress });
      out(r.ok ? `ok: ${file} (${r.pages} pages, ${r.tables} tables)` : `FAILED (${r.reason}): ${r.detail}`, { ...r, path: file });
      return r.ok ? EXIT.OK : r.reason === 'wrong-key' ? EXIT.WRONG_PASSWORD : EXIT.VERIFY_FAILED;
    }
    case 'list': {
      need('backup-dir');
      const list = await (await service({ db: flags.db ?? need('backup-dir') })).listBackups();
      out(list.map((b) => `${b.createdAt}  ${String(b.sizeBytes).padStart(12)}  ${b.path}`).join('\n') || '(no backups)', { ok: true, backups: list });
      return EXIT.OK;
    }
    case 'latest': {
      need('backup-dir');
      const b = await (await service({ db: flags.db ?? need('backup-dir') })).getLatestBackup();
      out(b ? b.path : '(no backups)', { ok: true, latest: b });
      return b ? EXIT.OK : EXIT.FAILURE;
    }
    case 'prune': {
      need('backup-dir');
      const deleted = await (await service()).cleanupOldBackups();
      out(`deleted ${deleted} backup(s)`, { ok: true, deleted });
      return EXIT.OK;
    }
    case 'rotate-key': {
      need('backup-dir');
      const current = await password('current password: ');
      const next = await readSecret({ env: flags['new-password-env'], fd: flags['new-password-fd'], prompt: 'new password: ', confirm: true });
      return finish(await (await service({ secret: current })).changePassword({ password: next }, { onProgress }), 'password changed; new backup');
    }
    case 'restore': {
      const file = positional();
      need('backup-dir');
      const r = await (await service({ secret: await password() })).restoreBackup(file, { onProgress });
      out(r.success ? `restored ${flags.db} from ${file}; the replaced database is kept as ${r.preRestorePath ?? '(none)'}` : `restore failed: ${r.error}`, { ok: r.success, ...r });
      if (!r.success) process.stderr.write(`cipherkeep: ${r.error}\n`);
      return r.success ? EXIT.OK : EXIT_FOR_CODE[r.errorCode ?? ''] ?? EXIT.FAILURE;
    }
    default:
      return usage(`unknown command: ${command}`);
  }
}

function usage(message: string): never {
  throw new UsageError(message);
}

function envIfSet(name: string): string | undefined {
  return process.env[name] ? name : undefined;
}

function int(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) usage(`--${name} must be a whole number`);
  return Number(value);
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
  set('kdfIterations', int(flags['kdf-iter'], 'kdf-iter'));
  set('pageSize', int(flags['page-size'], 'page-size'));
  set('hmacAlgorithm', hash(flags.hmac, 'hmac'));
  set('kdfAlgorithm', hash(flags['kdf-algorithm'], 'kdf-algorithm'));
  return { ...base, cipher };
}
