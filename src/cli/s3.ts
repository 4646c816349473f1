/**
 * The command line's `s3://bucket/prefix` backup directories. Settings come
 * from the AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL: path-style then). The
 * backup is made and verified locally first, in `.cipherkeep-staging`
 * beside the database (its newest backup stays there, so a second run the
 * same day costs nothing), then sent to the bucket, read back and checked
 * there. A backup named on the command line (verify, restore) may be a whole
 * `s3://bucket/prefix/backup_….db` URL.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BackupService, BackupResult, OnProgress, TargetResult } from '../backup/backup-service.ts';
import type { TargetSpec } from '../backup/targets.ts';
import type { KeyMaterial } from '../engine/cipher.ts';
import { isS3Url, parseS3Url } from '../targets/s3/config.ts';
import { S3Target } from '../targets/s3/s3-target.ts';
import { formatBytes, plural } from './format.ts';
import { usage } from './args.ts';
import type { EXIT as ExitCodes } from './main.ts';
import { runRemoteGenerations } from './s3-generations.ts';

export interface RemoteOutcome {
  exit: number;
  text: string;
  json: Record<string, unknown>;
}

/** What main.ts lends: a service factory (local directory and targets chosen here), the password readers, progress. */
export interface RemoteContext {
  command: string;
  args: string[];
  backupDir: string | undefined;
  db: string | undefined;
  force: boolean | undefined;
  /** --incremental: the bucket holds page-store generations (s3-generations.ts). */
  incremental: boolean;
  /** --generation N|latest (verify, restore). */
  generation: string | undefined;
  /** --keep-generations N. */
  keepGenerations: number | undefined;
  limits: { maxBackups?: number | undefined; maxAgeDays?: number | undefined };
  service(options: { db?: string; secret?: KeyMaterial; backupDir: string; targets: TargetSpec[]; maxBackups?: number; incremental?: boolean }): BackupService;
  /** The password, or the raw key of --key-env/--key-fd. */
  password(prompt?: string): Promise<KeyMaterial>;
  newPassword(): Promise<KeyMaterial>;
  onProgress: OnProgress | undefined;
  /** Whether the database opens with this password (rotate-key's report). */
  opensWith(db: string, secret: KeyMaterial): Promise<boolean>;
  /** main.ts's exit codes, and the one for an error code. */
  exit: typeof ExitCodes;
  exitFor(code: string | undefined): number;
}

/** Whether this run names an s3:// backup directory or backup. */
export function isRemoteRun(backupDir: string | undefined, args: string[]): boolean {
  return (backupDir !== undefined && isS3Url(backupDir)) || args.some(isS3Url);
}

/** `s3://bucket/prefix/name.db` as the directory URL and the object name. */
function splitObjectUrl(url: string): { dir: string; name: string } {
  const { bucket, prefix } = parseS3Url(url);
  const name = prefix.replace(/\/$/, '').split('/').pop() ?? '';
  if (!name) usage(`not an s3 URL of a backup (s3://bucket/prefix/backup_….db): ${url}`);
  return { dir: `s3://${bucket}/${prefix.replace(/\/$/, '').slice(0, -name.length)}`, name };
}

function target(url: string): S3Target {
  return S3Target.fromUrl(url, process.env as Record<string, string | undefined>);
}

const staging = (db: string) => path.join(path.dirname(path.resolve(db)), '.cipherkeep-staging');
const objectUrl = (t: S3Target, name: string) => `${t.id}${name}`;

/** A target's failure as an outcome; TARGET_* codes exit 1 like other failures. */
function targetFailure(x: RemoteContext, what: string, r: TargetResult | undefined, extra: Record<string, unknown> = {}): RemoteOutcome {
  const code = r?.errorCode ?? 'FAILURE';
  return { exit: x.exitFor(code), text: `${what}: ${r?.error ?? 'no result'}`, json: { code, error: r?.error, target: r, ...extra } };
}

function localFailure(x: RemoteContext, what: string, r: BackupResult, extra: Record<string, unknown> = {}): RemoteOutcome {
  return { exit: x.exitFor(r.errorCode), text: `${what}: ${r.error}`, json: { code: r.errorCode, error: r.error, ...extra } };
}

const ok = (text: string, json: Record<string, unknown>): RemoteOutcome => ({ exit: 0, text, json });

/** Runs one command against an s3:// backup directory. */
export async function runRemote(x: RemoteContext): Promise<RemoteOutcome> {
  const { command, args } = x;
  const fileArg = ['verify', 'restore'].includes(command) && x.generation === undefined ? (args.length === 1 ? args[0]! : usage(`${command} takes exactly one file`)) : undefined;
  const located = fileArg && isS3Url(fileArg) ? splitObjectUrl(fileArg) : undefined;
  const dirUrl = located?.dir ?? x.backupDir;
  if (!dirUrl || !isS3Url(dirUrl)) return usage(`${command}: give --backup-dir s3://bucket/prefix, or the backup as an s3:// URL`);
  const name = located?.name ?? fileArg;
  if (name !== undefined && (name.includes('/') || !name)) usage(`${command}: name a backup in ${dirUrl} (a file name, not a path): ${name}`);
  const t = target(dirUrl);
  const spec: TargetSpec = { target: t, ...(x.limits.maxBackups !== undefined ? { maxBackups: x.limits.maxBackups } : {}), ...(x.limits.maxAgeDays !== undefined ? { maxAgeDays: x.limits.maxAgeDays } : {}) };
  const needDb = () => x.db ?? usage(`${command} needs --db`);
  const local = (secret?: KeyMaterial) => x.service({ ...(secret !== undefined ? { secret } : {}), backupDir: staging(needDb()), targets: [spec], maxBackups: 1 });
  if (x.incremental || x.generation !== undefined) {
    // Full backups stay in the local staging directory; the bucket holds generations.
    const gens: TargetSpec = { target: t, incremental: true, ...(x.keepGenerations !== undefined ? { generations: { keepLast: x.keepGenerations } } : {}) };
    return runRemoteGenerations(x, t, (secret, backupDir) => x.service({
      ...(secret !== undefined ? { secret } : {}), backupDir: backupDir ?? staging(needDb()), targets: [gens], maxBackups: 1, incremental: false,
    }));
  }

  switch (command) {
    case 'backup': {
      const r = await local(await x.password()).createBackup({ force: x.force, onProgress: x.onProgress });
      if (!r.success) return localFailure(x, 'backup failed', r);
      const sent = r.targets?.[0];
      if (!sent?.success) return targetFailure(x, 'backup failed', sent, { localPath: r.backupPath });
      const url = objectUrl(t, sent.name!);
      return ok(`backup: ${url} (${formatBytes(sent.sizeBytes ?? 0)})${sent.action === 'existing' ? ' — already backed up today' : ''}`,
        { backupPath: url, sizeBytes: sent.sizeBytes, existing: sent.action === 'existing', target: sent });
    }
    case 'list':
    case 'latest': {
      // Listing decrypts nothing: without --db every backup under the prefix is listed.
      const svc = x.service({ db: x.db ?? path.join(os.tmpdir(), 'cipherkeep-no-database'), backupDir: os.tmpdir(), targets: [spec] });
      const list = (await svc.targets.list(t.id)).map((b) => ({ ...b, path: objectUrl(t, b.filename) }));
      if (command === 'latest') {
        if (!list[0]) return { exit: x.exit.FAILURE, text: `no backups in ${dirUrl}`, json: { code: 'NO_BACKUPS', error: 'no backups', latest: null } };
        return ok(list[0].path, { latest: list[0] });
      }
      return ok(list.map((b) => `${b.createdAt}  ${formatBytes(b.sizeBytes).padStart(10)}  ${b.path}`).join('\n') || '(no backups)', { backups: list });
    }
    case 'prune': {
      const [r] = await local().targets.prune();
      if (!r?.success) return targetFailure(x, 'prune failed', r);
      return ok(`deleted ${plural(r.deleted, 'backup')} from ${t.id}`, { deleted: r.deleted, target: r });
    }
    case 'verify': {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cipherkeep-verify-'));
      try {
        const svc = x.service({ db: path.join(tmp, 'none.db'), secret: await x.password(), backupDir: tmp, targets: [spec] });
        const r = await svc.targets.verify(t.id, name!, { onProgress: x.onProgress });
        const url = objectUrl(t, name!);
        if (r.ok) return ok(`ok: ${url} (${plural(r.pages, 'page')}, ${plural(r.tables, 'table')})`, { path: url, pages: r.pages, tables: r.tables });
        const exit = r.reason === 'wrong-key' ? x.exit.WRONG_PASSWORD : x.exit.VERIFY_FAILED;
        return { exit, text: `verification failed (${r.reason}): ${r.detail}`, json: { code: 'VERIFY_FAILED', path: url, reason: r.reason, error: r.detail } };
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    }
    case 'restore': {
      const svc = local(await x.password());
      const r = await svc.targets.restore(t.id, name!, { onProgress: x.onProgress });
      if (r.success) return ok(`restored ${x.db} from ${objectUrl(t, name!)}; the replaced database is kept as ${r.preRestorePath ?? '(none)'}`, { preRestorePath: r.preRestorePath });
      let code = r.errorCode;
      if (code === 'VERIFY_FAILED' && /wrong-key/.test(r.error ?? '')) code = 'WRONG_KEY';
      return { exit: x.exitFor(code), text: `restore failed: ${r.error}`, json: { code, error: r.error } };
    }
    case 'rotate-key': {
      const db = needDb();
      const current = await x.password('current password: ');
      const next = await x.newPassword();
      const r = await local(current).changePassword(next, { onProgress: x.onProgress });
      const changed = r.success || (await x.opensWith(db, next));
      const sent = r.targets?.[0];
      if (r.success && sent?.success) {
        const url = objectUrl(t, sent.name!);
        return ok(`password changed; new backup: ${url} (${formatBytes(sent.sizeBytes ?? 0)})`, { passwordChanged: true, backupPath: url, sizeBytes: sent.sizeBytes, target: sent });
      }
      const what = changed ? 'password changed, but the new backup failed' : 'password not changed';
      return r.success ? targetFailure(x, what, sent, { passwordChanged: changed }) : localFailure(x, what, r, { passwordChanged: changed, target: sent });
    }
    default:
      return usage(`${command} does not take an s3:// backup directory`);
  }
}
