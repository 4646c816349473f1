/**
 * Backups that survive the device: every verified local backup is copied to
 * each target (another disk, a folder, S3-compatible storage), read back and
 * checked there, and kept by that target's own retention. Targets are tried
 * one after another, each on its own: one that fails (unreachable, denied,
 * a bad read-back) is reported in its result and never stops the others or
 * the local backup.
 *
 * Old-password backups: after a password change every reachable target
 * keeps only the new backup. A target that could not be reached then still
 * holds backups under the old password; every later run that reaches it
 * first deletes each backup of this database whose page 1 does not carry
 * the current key's HMAC (one page read per backup), so they go the next
 * time the target answers. The result of the change says which targets
 * still had them.
 */
import type { KeyMaterial } from '../engine/cipher.ts';
import type { JournalMode } from '../engine/database.ts';
import { SALT_BYTES } from '../engine/cipher.ts';
import { InvalidArgumentError, TargetNotFoundError } from '../engine/errors.ts';
import type { BackupTarget } from '../targets/target.ts';
import { retentionVictims, sameIdentity, identityOf, type Listed } from './catalog.ts';
import { codeOf, messageOf, type ServiceContext } from './context.ts';
import { backupName, parseBackupName, utcDay } from './names.ts';
import { checkRemote, readableWith } from './remote-check.ts';
import type { BackupInfo, BackupResult, OnProgress } from './types.ts';
import type { Held } from './context.ts';
import type { Generations } from './incremental.ts';
import type { RetentionSettings } from './page-store/index.ts';
import { sendGeneration, targetGenerations } from './target-generations.ts';
import { rawKeyFor } from './verify.ts';

export interface TargetSpec {
  target: BackupTarget;
  /** Newest backups kept on this target (default: the service's maxBackups). */
  maxBackups?: number;
  /** Backups older than this many days are deleted from this target, except the newest (default: the service's maxAgeDays). */
  maxAgeDays?: number;
  /** Hold page-store generations (incremental backups) instead of full files: see target-generations.ts. */
  incremental?: boolean;
  /** With `incremental`: which generations are kept (default: the newest 30). */
  generations?: RetentionSettings;
}

/** What happened on one target. */
export interface TargetResult {
  /** The target's id (e.g. `s3://bucket/prefix/`). */
  target: string;
  success: boolean;
  /**
   * 'uploaded': the backup went up and read back whole and verified;
   * 'existing': the target already held today's backup; 'purged': only
   * deletions were asked for (or possible); 'failed': see `error`.
   */
  action: 'uploaded' | 'existing' | 'purged' | 'failed';
  /** The backup's name on the target. */
  name?: string;
  sizeBytes?: number;
  /** Backups deleted from this target: retention, replacement, or under another password. */
  deleted: number;
  error?: string;
  errorCode?: string;
  /** Incremental targets: the generation made, the pages it wrote, whether it is a full one. */
  generation?: string;
  pagesWritten?: number;
  full?: boolean;
}

/** A backup as it lies on a target. */
export interface TargetBackupInfo extends BackupInfo {
  target: string;
}

/** The local backup to send, and the key that reads it. */
export interface Outgoing {
  path: string;
  size: number;
  secret: KeyMaterial;
  /** The backup's name on full-file targets (default: the file's own; a staged snapshot's is the name it would have). */
  name?: string;
  /** The database's journal mode, when `path` is a snapshot just taken (for generations made from it). */
  journalMode?: JournalMode;
  /** A snapshot whose pages were not all checked yet (a local generation checks only changed ones): checked once before any full-file send. */
  unchecked?: boolean;
}

export interface SendOptions {
  /** Upload even when the target holds today's backup. */
  force?: boolean;
  /** Delete every other backup of this database from the target once the new one is there (purge and refresh). */
  replace?: boolean;
  onProgress?: OnProgress;
  /** The service's locks: incremental targets write under them. */
  held?: Held;
}

const CHUNK = 4 << 20;

export class Targets {
  readonly specs: readonly TargetSpec[];

  constructor(
    private readonly c: ServiceContext,
    specs: readonly TargetSpec[],
    private readonly prefix: string,
    private readonly defaults: { maxBackups: number; maxAgeDays: number },
    private readonly backupDir = '',
  ) {
    const ids = new Set<string>();
    for (const s of specs) {
      if (!s?.target || typeof s.target.put !== 'function') throw new InvalidArgumentError('each target needs a BackupTarget as `target`');
      if (ids.has(s.target.id)) throw new InvalidArgumentError(`two targets have the id ${s.target.id}`);
      ids.add(s.target.id);
      for (const k of ['maxBackups', 'maxAgeDays'] as const) {
        if (s[k] !== undefined && (!Number.isInteger(s[k]) || s[k]! < 0)) throw new InvalidArgumentError(`${k} of ${s.target.id} must be a non-negative integer`);
      }
    }
    this.specs = [...specs];
  }

  readonly #generations = new Map<string, Generations>();

  /** The generations an incremental target holds. */
  generations(spec: TargetSpec): Generations {
    if (!spec.incremental) throw new InvalidArgumentError(`${spec.target.id} holds full backups, not generations`);
    let g = this.#generations.get(spec.target.id);
    if (!g) this.#generations.set(spec.target.id, (g = targetGenerations(this.c, spec, this.backupDir, this.prefix)));
    return g;
  }

  get any(): boolean {
    return this.specs.length > 0;
  }

  spec(id: string): TargetSpec {
    const s = this.specs.find((x) => x.target.id === id);
    if (!s) throw new InvalidArgumentError(`no target ${JSON.stringify(id)} (targets: ${this.specs.map((x) => x.target.id).join(', ') || 'none'})`);
    return s;
  }

  /** This database's backups on the target (every backup when the database does not exist yet), newest first. */
  async list(target: BackupTarget): Promise<Listed[]> {
    const identity = await identityOf(this.c.files, this.c.databasePath);
    const out: Listed[] = [];
    for (const o of await target.list(`${this.prefix}_`)) {
      const parsed = parseBackupName(this.prefix, o.name);
      if (!parsed || parsed.tmp) continue;
      if (identity && !sameIdentity(identity, await target.read(o.name, 0, SALT_BYTES))) continue;
      out.push({ ...o, ...parsed, path: o.name });
    }
    return out.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || b.seq - a.seq);
  }

  async infos(id: string): Promise<TargetBackupInfo[]> {
    const { target } = this.spec(id);
    return (await this.list(target)).map((b) => ({ target: target.id, filename: b.name, path: b.name, sizeBytes: b.size, createdAt: b.createdAt.toISOString() }));
  }

  /** Sends the local backup to every target; one result per target, in order. */
  async send(local: Outgoing, options: SendOptions = {}): Promise<TargetResult[]> {
    let raw: Uint8Array;
    let salt: Uint8Array;
    try {
      const material = await this.c.profile.keyFor(local.secret, this.c.files, local.path);
      raw = (await rawKeyFor(this.c.verifyContext, material, local.path)).key!;
      salt = await this.c.files.read(local.path, 0, SALT_BYTES);
    } catch (e) {
      return this.specs.map((s) => ({ target: s.target.id, success: false, action: 'failed', deleted: 0, error: `the local backup could not be read: ${messageOf(e)}`, errorCode: codeOf(e) }));
    }
    const unfit = await this.#checkForFullSends(local, raw, options.onProgress);
    const results: TargetResult[] = [];
    for (const spec of this.specs) {
      if (unfit && !spec.incremental) results.push({ target: spec.target.id, success: false, action: 'failed', deleted: 0, ...unfit });
      else if (spec.incremental && options.held) {
        results.push(await sendGeneration(this.c, this.generations(spec), spec, { path: local.path, key: raw, journalMode: local.journalMode },
          { held: options.held, replace: !!options.replace, force: !!options.force, onProgress: options.onProgress }));
      } else results.push(await this.#sendOne(spec, local, raw, salt, options));
    }
    return results;
  }

  /** An unchecked snapshot going to full-file targets: every page's HMAC first, as a full backup's (null: fit to send). */
  async #checkForFullSends(local: Outgoing, raw: Uint8Array, onProgress?: OnProgress): Promise<{ error: string; errorCode: string } | null> {
    if (!local.unchecked || this.specs.every((s) => s.incremental)) return null;
    const check = await this.c.verify(local.path, { key: raw }, onProgress, 'pages').catch((e) => ({ ok: false as const, reason: codeOf(e), detail: messageOf(e) }));
    return check.ok ? null : { error: `the snapshot failed verification (${check.reason}): ${check.detail}`, errorCode: 'VERIFY_FAILED' };
  }

  async #sendOne(spec: TargetSpec, local: Outgoing, raw: Uint8Array, salt: Uint8Array, options: SendOptions): Promise<TargetResult> {
    const { target } = spec;
    let name = local.name ?? this.c.files.basename(local.path);
    const result: TargetResult = { target: target.id, success: false, action: 'failed', name, deleted: 0 };
    try {
      await target.check?.();
      name = result.name = await this.#freeName(target, name, salt);
      result.deleted += await this.#sweepOtherKeys(target, raw, name);
      const today = utcDay(this.c.clock());
      const todays = (await this.list(target)).find((b) => utcDay(b.createdAt) === today);
      if (todays && !options.force && !options.replace) {
        Object.assign(result, { success: true, action: 'existing', name: todays.name, sizeBytes: todays.size });
      } else {
        await this.#upload(target, local, name, options.onProgress);
        const check = await checkRemote(target, name, local.size, salt, raw, this.c.profile,
          (done) => void options.onProgress?.({ phase: 'verify', bytesDone: done, bytesTotal: local.size }));
        if (!check.ok) {
          await this.#removeWithSidecars(target, name).catch(() => false);
          return { ...result, error: `read-back verification failed: ${check.detail}`, errorCode: 'VERIFY_FAILED' };
        }
        Object.assign(result, { success: true, action: 'uploaded', sizeBytes: local.size });
        this.c.log.info(`sent backup ${name} (${local.size} bytes) to ${target.id}`);
      }
      result.deleted += await this.#retain(spec, options.replace ? result.name! : undefined);
      const cleared = await target.cleanup?.(this.c.clock()).catch((e) => (this.c.log.warn(`cleanup on ${target.id} failed: ${messageOf(e)}`), 0));
      if (cleared) this.c.log.info(`cleared ${cleared} upload${cleared === 1 ? '' : 's'} left unfinished on ${target.id}`);
    } catch (e) {
      result.error = `${target.id}: ${messageOf(e)}`;
      result.errorCode = codeOf(e);
      this.c.log.warn(`backup to ${target.id} failed: ${messageOf(e)}`);
    }
    return result;
  }

  /**
   * The local backup's name, or the next one of the same second when the
   * target holds another database's backup under it (two databases sharing a
   * prefix): an upload never replaces what is not ours. Our own object under
   * the name (a send cut short) is replaced.
   */
  async #freeName(target: BackupTarget, name: string, salt: Uint8Array): Promise<string> {
    const parsed = parseBackupName(this.prefix, name);
    for (let seq = parsed?.seq ?? 0, candidate = name; ; candidate = backupName(this.prefix, parsed!.createdAt, ++seq)) {
      if (!(await target.stat(candidate))) return candidate;
      if (sameIdentity(await target.read(candidate, 0, SALT_BYTES), salt)) return candidate;
      if (!parsed) throw new InvalidArgumentError(`${target.id} holds another database's ${name}`);
    }
  }

  async #upload(target: BackupTarget, local: Outgoing, name: string, onProgress?: OnProgress): Promise<void> {
    const files = this.c.files;
    const source = (path: string) => (offset: number, length: number) => files.read(path, offset, length);
    const report = (done: number) => void onProgress?.({ phase: 'upload', bytesDone: done, bytesTotal: local.size });
    report(0);
    // Sidecars first: a backup that shows on the target can always be read.
    for (const s of this.c.profile.sidecars) {
      const size = (await files.stat(`${local.path}${s}`))?.size ?? 0;
      await target.put(`${name}${s}`, size, source(`${local.path}${s}`));
    }
    await target.put(name, local.size, source(local.path), report);
  }

  /** Backups of this database the current key cannot read: left by a password change this target missed. */
  async #sweepOtherKeys(target: BackupTarget, raw: Uint8Array, keep: string): Promise<number> {
    let deleted = 0;
    for (const b of await this.list(target)) {
      if (b.name === keep || (await readableWith(target, b.name, raw, this.c.profile))) continue;
      if (await this.#removeWithSidecars(target, b.name)) deleted++;
      this.c.log.info(`deleted ${b.name} from ${target.id}: not readable with the current key (an earlier password's)`);
    }
    return deleted;
  }

  /** The target's retention, or with `only` every backup of this database but that one. */
  async #retain(spec: TargetSpec, only?: string, held?: Held): Promise<number> {
    // Generations keep their own retention as each commits; purging them all needs the service's locks.
    if (spec.incremental) return only === '' && held ? (await this.generations(spec).purgeAll(held)).length : 0;
    const backups = await this.list(spec.target);
    const victims = only !== undefined
      ? backups.filter((b) => b.name !== only).map((backup) => ({ backup, why: 'replaced' }))
      : retentionVictims(backups, this.c.clock(), spec.maxBackups ?? this.defaults.maxBackups, spec.maxAgeDays ?? this.defaults.maxAgeDays);
    let deleted = 0;
    for (const { backup, why } of victims) {
      if (await this.#removeWithSidecars(spec.target, backup.name)) deleted++;
      this.c.log.debug(`deleted ${backup.name} from ${spec.target.id}: ${why}`);
    }
    return deleted;
  }

  async #removeWithSidecars(target: BackupTarget, name: string): Promise<boolean> {
    const removed = await target.remove(name);
    for (const s of this.c.profile.sidecars) await target.remove(`${name}${s}`).catch(() => false);
    return removed;
  }

  /**
   * After purge-and-refresh. With a password change whose new backup failed,
   * every backup of this database goes from every target it can reach; a
   * target it could not reach is told to still hold old-password backups.
   */
  async afterPurge(result: BackupResult, passwordChanged: boolean, held?: Held): Promise<BackupResult> {
    if (!this.any || !passwordChanged) return result;
    const out = result.success ? result : { ...result, targets: await this.purgeAll(held) };
    for (const t of out.targets ?? []) {
      if (!t.success) t.error = `${t.error}; backups under the old password may remain there: they are deleted the next time a backup reaches it`;
    }
    return out;
  }

  /** Retention on every target; per-target results (action 'purged'). */
  async prune(): Promise<TargetResult[]> {
    return this.#each(async (spec) => this.#retain(spec));
  }

  /** Deletes every backup of this database from every target (a password change whose new backup failed). */
  async purgeAll(held?: Held): Promise<TargetResult[]> {
    return this.#each(async (spec) => this.#retain(spec, '', held));
  }

  async #each(fn: (spec: TargetSpec) => Promise<number>): Promise<TargetResult[]> {
    const out: TargetResult[] = [];
    for (const spec of this.specs) {
      try {
        out.push({ target: spec.target.id, success: true, action: 'purged', deleted: await fn(spec) });
      } catch (e) {
        out.push({ target: spec.target.id, success: false, action: 'failed', deleted: 0, error: `${spec.target.id}: ${messageOf(e)}`, errorCode: codeOf(e) });
      }
    }
    return out;
  }

  /** The object's bytes in bounded chunks. */
  async *stream(id: string, name: string, onBytes?: (done: number, total: number) => void): AsyncGenerator<Uint8Array> {
    const { target } = this.spec(id);
    const info = await target.stat(name);
    if (!info) throw new TargetNotFoundError(`no backup ${name} on ${target.id}`);
    for (let offset = 0; offset < info.size; ) {
      const chunk = await target.read(name, offset, Math.min(CHUNK, info.size - offset));
      if (chunk.length === 0) throw new TargetNotFoundError(`${name} on ${target.id} ended at ${offset} of ${info.size} bytes`);
      offset += chunk.length;
      onBytes?.(offset, info.size);
      yield chunk;
    }
  }

  /** Downloads a backup (and its sidecars) to a new local file `to`. */
  async download(id: string, name: string, to: string, onProgress?: OnProgress): Promise<number> {
    const { target } = this.spec(id);
    for (const s of this.c.profile.sidecars) await this.#write(this.stream(id, `${name}${s}`), `${to}${s}`);
    const done = await this.#write(this.stream(id, name, (bytesDone, bytesTotal) => void onProgress?.({ phase: 'download', bytesDone, bytesTotal })), to);
    this.c.log.info(`downloaded ${name} (${done} bytes) from ${target.id}`);
    return done;
  }

  async #write(chunks: AsyncIterable<Uint8Array>, to: string): Promise<number> {
    const writer = await this.c.files.create(to);
    let done = 0;
    try {
      for await (const chunk of chunks) {
        await writer.write(chunk);
        done += chunk.length;
      }
      await writer.close();
      await this.c.files.restrictToOwner(to, 'file');
      return done;
    } catch (e) {
      await writer.abort().catch(() => {});
      throw e;
    }
  }
}
