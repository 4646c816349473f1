/**
 * Incremental backups on a target: a target spec with `incremental: true`
 * holds page-store generations (docs/page-store.md) instead of full files,
 * through a TargetStore (the store's directory as objects on the target).
 * Each send makes one generation from a fresh snapshot of the database; a
 * password change, or a store that still holds generations under another
 * key (a change this target missed), makes a full one and purges the rest.
 * Verify and restore read pages from the target: every page's HMAC is
 * checked as it is assembled, then the file is verified fully and swapped in
 * as a local generation is.
 */
import type { KeyMaterial } from '../engine/cipher.ts';
import { TargetStore } from './page-store/target-store.ts';
import { deriveStoreKeys } from './page-store/seal.ts';
import { isOurs, scanStore } from './page-store/state.ts';
import { codeOf, messageOf, type Held, type ServiceContext } from './context.ts';
import { DEFAULT_GENERATION_RETENTION, Generations } from './incremental.ts';
import { tmpPath } from './names.ts';
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

/**
 * A new generation on the target. `replace` (a password change or purge and
 * refresh): a full one, every generation under another key deleted once it
 * commits; so too when the store still holds another key's generations.
 */
export async function sendGeneration(
  c: ServiceContext, gens: Generations, spec: TargetSpec, held: Held, secret: KeyMaterial, replace: boolean, onProgress?: OnProgress,
): Promise<TargetResult> {
  const { target } = spec;
  const result: TargetResult = { target: target.id, success: false, action: 'failed', deleted: 0 };
  try {
    await target.check?.();
    const raw = await gens.keys.readKey(secret).catch(() => null);
    const keys = raw && (await deriveStoreKeys(raw));
    const stale = (await scanStore(gens.store, gens.dir)).manifests.some((m) => !keys || !isOurs(m, keys));
    const staged = tmpPath(gens.dir, held.dir.token);
    const r = replace || stale
      ? await gens.afterPasswordChange(held, secret, staged, onProgress)
      : await gens.create(held, secret, staged, onProgress);
    if (!r.success) return { ...result, error: `${target.id}: ${r.error}`, ...(r.errorCode ? { errorCode: r.errorCode } : {}) };
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
