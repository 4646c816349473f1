/**
 * Caller side: a typed client for a worker running exposeKeep(). Function
 * arguments (progress callbacks) are proxied, typed errors keep their class,
 * and if the worker dies (a load error, a crash) every pending and later call
 * rejects instead of hanging.
 */
import * as Comlink from 'comlink';
import type { KeepApi, KeepOptions } from './api.ts';
import { installTransferHandlers } from './protocol.ts';
import { CipherkeepError, registerErrorCode } from '../engine/errors.ts';

type Promisified<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

export type KeepClient = Promisified<KeepApi> & {
  /** Stops the worker; calls after this reject. */
  terminate(): Promise<void>;
};

/** The worker failed to load, crashed, exited or was terminated. */
export class WorkerFailedError extends CipherkeepError {
  override name = 'WorkerFailedError';
  override readonly code = 'WORKER_FAILED';
}
registerErrorCode('WORKER_FAILED', WorkerFailedError);

export interface WorkerLike {
  endpoint: Comlink.Endpoint;
  /** Calls `fail` once when the worker errors or exits. */
  onFailure(fail: (error: Error) => void): void;
  terminate(): Promise<void>;
}

/** Wraps the worker and opens the database in it; a failed open stops the worker. */
export async function startKeep(worker: WorkerLike, options: KeepOptions): Promise<KeepClient> {
  const client = wrapKeep(worker);
  try {
    await client.open(options);
  } catch (e) {
    await client.terminate();
    throw e;
  }
  return client;
}

export function wrapKeep(worker: WorkerLike): KeepClient {
  installTransferHandlers();
  const remote = Comlink.wrap<KeepApi>(worker.endpoint);
  let failure: Error | null = null;
  const pending = new Set<(e: Error) => void>();
  worker.onFailure((e) => {
    failure ??= new WorkerFailedError(`the cipherkeep worker failed: ${e.message}`);
    for (const reject of pending) reject(failure);
    pending.clear();
  });

  const call = (method: keyof KeepApi) => (...args: unknown[]) => {
    if (failure) return Promise.reject(failure);
    const wired = args.map((a) => (typeof a === 'function' ? Comlink.proxy(a as () => void) : a));
    return new Promise((resolve, reject) => {
      pending.add(reject);
      ((remote[method] as unknown as (...a: unknown[]) => Promise<unknown>)(...wired))
        .then(resolve, reject)
        .finally(() => pending.delete(reject));
    });
  };

  const methods = [
    'open', 'exec', 'query', 'run', 'batch', 'createBackup', 'verifyBackup', 'listBackups', 'getLatestBackup',
    'cleanupOldBackups', 'purgeAndRefresh', 'changePassword', 'restoreBackup', 'exportBackup', 'copyBackupToFolder', 'importBackup', 'memoryUsage', 'pageCheckStats', 'close',
    'databaseState', 'targetIds', 'listTargetBackups', 'getLatestTargetBackup', 'pruneTargets', 'verifyTargetBackup', 'restoreTargetBackup', 'importTargetBackup',
    'listGenerations', 'verifyGeneration', 'restoreGeneration', 'listTargetGenerations', 'verifyTargetGeneration', 'restoreTargetGeneration',
  ] as const satisfies ReadonlyArray<keyof KeepApi>;
  const client = Object.fromEntries(methods.map((m) => [m, call(m)])) as unknown as KeepClient;
  client.terminate = async () => {
    failure ??= new WorkerFailedError('the cipherkeep worker was terminated');
    remote[Comlink.releaseProxy]();
    await worker.terminate();
  };
  return client;
}
