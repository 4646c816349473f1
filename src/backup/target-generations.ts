/**
 * Incremental backups on a target: a target spec with `incremental: true`
 * holds page-store generations (docs/page-store.md) instead of full files,
 * through a TargetStore (the store's directory as objects on the target).
 * Each send makes one generation from the copy the service already took and
 * verified (never a second snapshot of the live database); a password change, or a store that still holds generations under another
 * key (a change this target missed), makes a full one and purges the rest.
 * Verify and restore read pages from the target: every page's HMAC is
 * checked as it is assembled, then the file is verified fully and swapped in
 * as a local generation is.
 */
import type { JournalMode } from '../engine/database.ts';
import { TargetStore } from './page-store/target-store.ts';
import { deriveStoreKeys } from './page-store/seal.ts';
import { isOurs, scanStore } from './page-store/state.ts';
import { codeOf, messageOf, type Held, type ServiceContext } from './context.ts';
import { DEFAULT_GENERATION_RETENTION, Generations } from './incremental.ts';
import { utcDay } from './names.ts';
import type { TargetResult, TargetSpec } from './targets.ts';
import type { OnProgress } from './types.ts';

/** The generations a target spec holds: objects `<prefix>.<database file name>.pages.<file>` on its target. */
export function targetGenerations(c: ServiceContext, spec: TargetSpec, backupDir: string, prefix: string): Generations {
  // A path that is never made locally: the TargetStore sends its files to the target.
  const dir = Generations.dirFor(c, backupDir, `${prefix}.target-${shortId(spec.target.id)}`);
  const store = TargetStore.at(c.files, spec.target, dir, `${prefix}.${c.files.basename(c.databasePath)}.pages.`);
  // One rollback anchor per target, beside the database, as the local store's.
  return new Generations(c, dir, spec.generations ?? DEFAULT_GENERATION_RETENTION, store, `${c.databasePath}.pages-anchor-${shortId(spec.target.id)}`);
}

/** The verified copy a generation is made from (never the live database), and its raw key. */
export interface GenerationSource {
  path: string;
  key: Uint8Array;
  /** The database's journal mode, when the copy was just taken (a full backup file does not record it: the profile's). */
  journalMode?: JournalMode | undefined;
}

export interface GenerationSendOptions {
  held: Held;
  /** A password change or purge and refresh: a full generation, every other key's deleted once it commits. */
  replace: boolean;
  /** Past the daily rule (a generation of the same pages is still not made twice). */
  force: boolean;
  onProgress?: OnProgress | undefined;
}

/**
 * A new generation on the target, made from `source` — the verified local
 * backup or the snapshot the local generation was made from — so one
 * snapshot of the live database serves every target. The daily rule, as
 * full targets keep it: without `force`, nothing is made when the target's
 * newest generation is from today (action 'existing'); and never twice the
 * same pages: when the newest generation already holds exactly these, none
 * is made ('existing' too). `replace`, or a store that still holds another
 * key's generations: a full one, the rest deleted once it commits.
 */
export async function sendGeneration(
  c: ServiceContext, gens: Generations, spec: TargetSpec, source: GenerationSource, options: GenerationSendOptions,
): Promise<TargetResult> {
  const { target } = spec;
  const { held, onProgress } = options;
  const result: TargetResult = { target: target.id, success: false, action: 'failed', deleted: 0 };
  try {
    await target.check?.();
    const keys = await deriveStoreKeys(source.key);
    const stale = (await scanStore(gens.store, gens.dir)).manifests.some((m) => !isOurs(m, keys));
    const fresh = options.replace || stale;
    if (!fresh && !options.force) {
      const head = await gens.head(source.key);
      if (head && utcDay(head.createdAt) === utcDay(c.clock())) {
        c.log.debug(`${target.id} holds today's generation ${head.generation} already`);
        return Object.assign(result, { success: true, action: 'existing', generation: head.generation });
      }
    }
    const journalMode = source.journalMode ?? c.profile.journalMode;
    const r = fresh
      ? await gens.orPurge(held, () => gens.commit(held, source.key, source.path, journalMode, true, onProgress))
      : await gens.commit(held, source.key, source.path, journalMode, false, onProgress, true);
    if (!r.success) return { ...result, error: `${target.id}: ${r.error}`, ...(r.errorCode ? { errorCode: r.errorCode } : {}) };
    if ('unchanged' in r && r.unchanged) return Object.assign(result, { success: true, action: 'existing', generation: r.generation, pagesWritten: 0 });
    Object.assign(result, { success: true, action: 'uploaded', sizeBytes: r.sizeBytes, generation: r.generation, pagesWritten: r.pagesWritten, full: r.full });
    c.log.info(`sent generation ${r.generation} (${r.pagesWritten} pages, ${r.sizeBytes} bytes) to ${target.id}`);
  } catch (e) {
    result.error = `${target.id}: ${messageOf(e)}`;
    result.errorCode = codeOf(e);
    c.log.warn(`incremental backup to ${target.id} failed: ${messageOf(e)}`);
  }
  return result;
}

/** A short, stable, non-secret tag for a target id (file names cannot hold `s3://…`). */
function shortId(id: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}
