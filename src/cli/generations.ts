/**
 * The CLI's incremental-backup commands: `list --incremental` shows the
 * generations, `verify --generation N` and `restore --generation N` check or
 * restore one ('latest' for the newest). What to print and what the JSON
 * holds; main.ts turns it into output and an exit code. The same on a
 * target's generations (s3-generations.ts).
 */
import type { BackupService, OnProgress } from '../backup/backup-service.ts';
import type { GenerationInfo } from '../backup/page-store/index.ts';
import { formatBytes, plural } from './format.ts';

export interface GenerationOutcome {
  ok: boolean;
  /** Success: the line(s) for stdout. Failure: the message for stderr. */
  text: string;
  json: Record<string, unknown>;
  /** On failure: the error code that picks the exit code. */
  code?: string;
}

export async function listGenerations(svc: Pick<BackupService, 'listGenerations'>): Promise<GenerationOutcome> {
  const list = await svc.listGenerations();
  const lines = list.generations.map(line);
  for (const p of list.problems) lines.push(`problem: ${p}`);
  return { ok: true, text: lines.join('\n') || '(no generations)', json: { generations: list.generations, head: list.head, problems: list.problems } };
}

function line(g: GenerationInfo): string {
  const what = g.state === 'ok' || g.state === 'expired'
    ? `${g.createdAt}  ${formatBytes(g.databaseBytes ?? 0).padStart(10)}  ${g.full ? 'full' : `${plural(g.newPages ?? 0, 'new page')}`}`
    : `${g.state}${g.detail ? `: ${g.detail}` : ''}`;
  return `generation ${g.generation.padStart(4)}  ${g.state === 'expired' ? '(expired) ' : ''}${what}`;
}

export async function verifyGeneration(svc: Pick<BackupService, 'verifyGeneration'>, generation: string, onProgress?: OnProgress): Promise<GenerationOutcome> {
  const r = await svc.verifyGeneration(generation, { onProgress });
  if (r.ok) {
    const problems = r.problems.map((p) => `\nproblem elsewhere in the store: ${p}`).join('');
    return { ok: true, text: `ok: generation ${r.generation} (${plural(r.pages, 'page')}, ${formatBytes(r.bytes)})${problems}`, json: { ...r } };
  }
  return {
    ok: false, code: r.reason === 'wrong-key' ? 'WRONG_KEY' : r.reason === 'missing' ? 'NOT_FOUND' : 'VERIFY_FAILED',
    text: `verification failed (${r.reason}): ${r.detail}`, json: { generation, reason: r.reason, error: r.detail },
  };
}

export async function restoreGeneration(svc: Pick<BackupService, 'restoreGeneration'>, db: string, generation: string, onProgress?: OnProgress): Promise<GenerationOutcome> {
  const r = await svc.restoreGeneration(generation, { onProgress });
  if (r.success) {
    return {
      ok: true, text: `restored ${db} from generation ${r.generation}; the replaced database is kept as ${r.preRestorePath ?? '(none)'}`,
      json: { generation: r.generation, preRestorePath: r.preRestorePath },
    };
  }
  return { ok: false, code: r.errorCode ?? 'FAILURE', text: `restore failed: ${r.error}`, json: { generation, error: r.error } };
}
