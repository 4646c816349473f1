/**
 * cipherkeep for pages: the database and its backups live in a Web Worker over
 * OPFS; this module gives the page a typed, non-blocking client.
 */
import { startKeep, type KeepClient } from './worker/client.ts';
import type { KeepOptions } from './worker/api.ts';

export type { KeepClient, KeepOptions };
export type { KeepTarget, KeepS3Options } from './worker/keep-targets.ts';
export type { TargetBackupInfo, TargetResult } from './backup/targets.ts';
export type { Presign, PresignRequest, SignedRequest } from './targets/s3/signing.ts';
export { WorkerFailedError } from './worker/client.ts';
export * from './engine/errors.ts';
export { backupFolder, type BackupFolder, type FolderState } from './browser/backup-folder.ts';
export { browserSchedule } from './browser/browser-schedule.ts';
export { createSchedule, type Schedule, type ScheduleOptions, type ScheduleRecord, type ScheduleStore } from './targets/schedule.ts';

export interface OpenCipherkeepOptions extends KeepOptions {
  /**
   * A worker running cipherkeep's worker entry, or its URL. Default: the
   * prebuilt worker that ships beside this module (dist/browser/worker.js),
   * which fetches the engine from beside itself; bundlers that follow
   * `new Worker(new URL(…, import.meta.url))` (Vite, webpack 5) emit both.
   */
  worker?: Worker | URL | string;
}

/** Starts (or adopts) the worker, opens the database in it, and returns the client. */
export async function openCipherkeep(options: OpenCipherkeepOptions): Promise<KeepClient> {
  const { worker: given, ...keepOptions } = options;
  // Persistence can only be requested from the page, not from the worker.
  await navigator.storage.persist?.().catch(() => false);
  // No await between creating the worker and listening for its errors.
  const worker = given instanceof Worker ? given : given ? new Worker(given, { type: 'module' }) : defaultWorker();
  return startKeep(
    {
      endpoint: worker,
      onFailure(fail) {
        // A load or syntax error in the worker would otherwise leave every call hanging.
        worker.addEventListener('error', (e) => fail(new Error(e.message || 'worker failed to load')), { once: true });
        worker.addEventListener('messageerror', () => fail(new Error('a message from the worker could not be read')), { once: true });
      },
      terminate: async () => worker.terminate(),
    },
    keepOptions,
  );
}

/**
 * The shipped worker. Written out in full, in this exact form, because
 * bundlers only follow `new Worker(new URL('literal', import.meta.url))`.
 */
function defaultWorker(): Worker {
  return new Worker(new URL('./browser/worker.js', import.meta.url), { type: 'module' });
}

/**
 * Saves a backup as a file: streamed into a file the user picks where the
 * File System Access API exists (`picker`, default true), otherwise through a
 * Blob and a download link (Chromium keeps large Blobs on disk).
 */
export async function downloadBackup(
  client: KeepClient,
  path: string,
  options: { filename?: string; picker?: boolean } = {},
): Promise<void> {
  const filename = options.filename ?? path.slice(path.lastIndexOf('/') + 1);
  const showSaveFilePicker = (globalThis as { showSaveFilePicker?: (o: object) => Promise<FileSystemFileHandle> }).showSaveFilePicker;
  if (showSaveFilePicker && options.picker !== false) {
    const handle = await showSaveFilePicker({ suggestedName: filename });
    await (await client.exportBackup(path)).pipeTo(await handle.createWritable());
    return;
  }
  const blob = await new Response(await client.exportBackup(path)).blob();
  const url = URL.createObjectURL(blob);
  try {
    const a = Object.assign(document.createElement('a'), { href: url, download: filename });
    document.body.append(a);
    a.click();
    a.remove();
  } finally {
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
}
