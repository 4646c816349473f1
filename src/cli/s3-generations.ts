/**
 * Incremental backups on an `s3://bucket/prefix` backup directory: the
 * bucket holds page-store generations (objects `<prefix>.<database>.pages.*`)
 * while the full backup each run makes stays local in the staging directory
 * (see s3.ts). `backup --incremental` makes a generation on every run that
 * finds the database changed,
 * `list --incremental` lists them, `verify/restore --generation N` check or
 * restore one (pages read from the bucket, each page's HMAC checked),
 * `rotate-key --incremental` replaces them with a full one under the new password.
 */
import type { KeyMaterial } from '../engine/cipher.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BackupService, TargetResult } from '../backup/backup-service.ts';
import type { S3Target } from '../targets/s3/s3-target.ts';
import { formatBytes, plural } from './format.ts';
import { listGenerations, restoreGeneration, verifyGeneration, type GenerationOutcome } from './generations.ts';
import type { RemoteContext, RemoteOutcome } from './s3.ts';
import { usage } from './args.ts';

/** The service: `backupDir` for its local files (default: the staging directory beside the database). */
type Local = (secret?: KeyMaterial, backupDir?: string) => BackupService;

/** The target's generation commands, shaped as the service's own: the same outcomes as on a local store. */
const on = (svc: BackupService, id: string) => ({
  listGenerations: () => svc.targets.listGenerations(id),
  verifyGeneration: (g?: string, o?: { onProgress?: RemoteContext['onProgress'] }) => svc.targets.verifyGeneration(id, g, o),
  restoreGeneration: (g: string, o?: Parameters<BackupService['restoreGeneration']>[1]) => svc.targets.restoreGeneration(id, g, o),
});

export async function runRemoteGenerations(x: RemoteContext, t: S3Target, local: Local): Promise<RemoteOutcome> {
  const outcome = (g: GenerationOutcome): RemoteOutcome => (g.ok ? { exit: 0, text: g.text, json: g.json } : { exit: x.exitFor(g.code), text: g.text, json: { code: g.code, ...g.json } });
  const sent = (what: string, r: TargetResult | undefined, extra: Record<string, unknown>): RemoteOutcome => {
    if (!r?.success) return { exit: x.exitFor(r?.errorCode), text: `${what} failed: ${r?.error ?? 'no result'}`, json: { code: r?.errorCode ?? 'FAILURE', error: r?.error, target: r, ...extra } };
    const text = r.action === 'existing'
      ? `generation ${r.generation} on ${t.id} already holds the database as it is (nothing written)`
      : `generation ${r.generation} on ${t.id} (${r.full ? 'full' : 'incremental'}: ${plural(r.pagesWritten ?? 0, 'page')}, ${formatBytes(r.sizeBytes ?? 0)} written)`;
    return { exit: 0, text: `${what}: ${text}`, json: { generation: r.generation, pagesWritten: r.pagesWritten, full: r.full, sizeBytes: r.sizeBytes, target: r, ...extra } };
  };
  // Reading writes nothing beside the database, which may be gone (a lost device): its name still
  // names the store, and the password opens the generations with a salt noted there.
  const detached = async <T>(fn: (svc: BackupService) => Promise<T>): Promise<T> => {
    if (x.db === undefined) usage(`${x.command} --${x.command === 'list' ? 'incremental' : 'generation'} on s3:// needs --db: the database's file name names its generations (the file itself may be missing)`);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cipherkeep-generations-'));
    try {
      return await fn(local(await x.password(), tmp));
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  };

  switch (x.command) {
    case 'backup': {
      // A generation on every run: past the daily rule (a fresh local copy; the bucket still never stores the same pages twice).
      const r = await local(await x.password()).createBackup({ force: true, onProgress: x.onProgress });
      if (!r.success) return { exit: x.exitFor(r.errorCode), text: `backup failed: ${r.error}`, json: { code: r.errorCode, error: r.error } };
      return sent('backup', r.targets?.[0], { localPath: r.backupPath });
    }
    case 'list':
      return outcome(await detached((svc) => listGenerations(on(svc, t.id))));
    case 'verify':
      return outcome(await detached((svc) => verifyGeneration(on(svc, t.id), x.generation!, x.onProgress)));
    case 'restore': {
      const db = x.db ?? usage('restore needs --db');
      return outcome(await restoreGeneration(on(local(await x.password()), t.id), db, x.generation!, x.onProgress));
    }
    case 'rotate-key': {
      const db = x.db ?? usage('rotate-key needs --db');
      const current = await x.password('current password: ');
      const next = await x.newPassword();
      const r = await local(current).changePassword(next, { onProgress: x.onProgress });
      const changed = r.success || (await x.opensWith(db, next));
      if (!r.success) return { exit: x.exitFor(r.errorCode), text: `${changed ? 'password changed, but the new backup failed' : 'password not changed'}: ${r.error}`, json: { code: r.errorCode, error: r.error, passwordChanged: changed, target: r.targets?.[0] } };
      return sent('password changed; new', r.targets?.[0], { passwordChanged: true });
    }
    default:
      return usage(`${x.command} does not take --incremental or --generation with an s3:// backup directory`);
  }
}
