/**
 * The API a worker exposes: one encrypted database and its backups. Runs in
 * the worker; the page (or Node main thread) calls it through Comlink and
 * never blocks on crypto or I/O. Runtime-agnostic: the host (OPFS in
 * browsers, the filesystem under Node) is supplied when the worker starts,
 * and created lazily on the first call so the worker can expose at once.
 */
import * as Comlink from 'comlink';
import type { CipherSettings } from '../engine/cipher.ts';
import type { Database, JournalMode, Params, Row, RunResult } from '../engine/database.ts';
import { ClosedError, DatabaseNotFoundError, InvalidArgumentError } from '../engine/errors.ts';
import {
  BackupService, type BackupHost, type BackupInfo, type BackupResult, type OnProgress, type RestoreResult, type VerifyResult,
  type TargetBackupInfo, type TargetResult,
} from '../backup/backup-service.ts';
import { sqlcipher4 } from '../backup/key-profiles.ts';
import { FolderTarget } from '../targets/folder-target.ts';
import { sequentialSource } from '../targets/sequential-source.ts';
import { targetSpecs, type KeepTarget } from './keep-targets.ts';
import type { RetentionSettings } from '../backup/page-store/index.ts';
import { generationsApi } from './generations-api.ts';
import type { PagePoolStats } from './page-check-pool.ts';

/** A small per-origin key-value store that survives reloads (idb-keyval in browsers). */
export interface Catalog {
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown): Promise<void>;
}

export interface KeepHost extends BackupHost {
  catalog?: Catalog;
  /** Memory the engine holds (the wasm heap), for diagnostics and benchmarks. */
  engineMemoryBytes?(): number;
  /** What the page-check pool has done (browsers: page-check-pool.ts), for tests and benchmarks. */
  pageCheckStats?(): PagePoolStats;
}

export interface KeepOptions {
  databasePath: string;
  password?: string;
  /** Raw 32-byte key instead of a password. */
  key?: Uint8Array;
  backupDir: string;
  create?: boolean;
  journalMode?: JournalMode;
  cipher?: CipherSettings;
  maxBackups?: number;
  maxAgeDays?: number;
  prefix?: string;
  /** createBackup makes page-store generations (incremental backups) by default. */
  incremental?: boolean;
  /** Which generations are kept (default: the newest 30). */
  generations?: RetentionSettings;
  /** Where the worker fetches the engine from (browsers). */
  wasmUrl?: string;
  /**
   * Browsers: how many Web Workers check the page HMACs of a file of 8 MiB or
   * more at once (default: one per core, at most 4; 0 or 1: the worker's own
   * thread). Read when the worker first opens a database.
   */
  pageCheckWorkers?: number;
  /**
   * Off-site targets every verified backup also goes to, each with its own
   * retention: a picked folder (`{ folder: handle }`) or S3 (`{ s3: { presign } }`,
   * the callback staying on the page). See keep-targets.ts.
   */
  targets?: KeepTarget[];
  /**
   * When the database does not exist and `create` is not set: 'fail'
   * (default, NOT_FOUND), or 'backups-only' — the backups (local and on the
   * targets) can be listed, verified and restored, and the database opens
   * once a restore puts it in place (a new device, or an origin whose storage
   * was cleared). Until then database calls throw ClosedError.
   */
  whenMissing?: 'fail' | 'backups-only';
}

export interface CatalogEntry extends BackupInfo {
  /** When this backup last passed verifyBackup or was created (ISO), from the catalog. */
  verifiedAt?: string;
}

type Secret = { password: string } | { key: Uint8Array };

export function createKeepApi(hostFor: (options: KeepOptions) => Promise<KeepHost>) {
  let state: { db: Database | null; backups: BackupService; host: KeepHost; options: KeepOptions; secret: Secret } | null = null;

  const live = () => {
    if (!state) throw new ClosedError('no database is open: call open() first');
    return state;
  };
  const liveDb = (): Database => {
    const db = live().db;
    if (!db) throw new ClosedError('the database does not exist yet: restore a backup (restoreBackup, restoreTargetBackup) or open it with create: true');
    return db;
  };
  const secretOf = (o: { password?: string; key?: Uint8Array }): Secret => {
    if (o.key !== undefined) return { key: o.key };
    if (typeof o.password === 'string') return { password: o.password };
    throw new InvalidArgumentError('a password or a raw key is required');
  };
  const catalogKey = (path: string) => `cipherkeep:verified:${path}`;
  const remember = async (path: string | undefined) => {
    if (path) await state?.host.catalog?.set(catalogKey(path), new Date().toISOString());
  };
  // A database that was missing ('backups-only') stays so until a restore puts one in place.
  const reopen = async (wasOpen: boolean) => {
    const s = live();
    s.db = await s.host.open(s.options.databasePath, { ...s.secret, cipher: s.options.cipher })
      .catch((e) => { if (wasOpen || !(e instanceof DatabaseNotFoundError)) throw e; return null; });
  };
  // Runs `fn` with the app's connection closed (rekey and restore replace what it reads).
  const withDatabaseClosed = async <T>(fn: () => Promise<T>): Promise<T> => {
    const s = live();
    const wasOpen = s.db !== null;
    await s.db?.close();
    s.db = null;
    try {
      return await fn();
    } finally {
      await reopen(wasOpen);
    }
  };

  return {
    /** Opens (or creates) the database and sets up its backups. */
    async open(options: KeepOptions): Promise<{ databasePath: string; database: 'open' | 'missing' }> {
      const before = state;
      state = null;
      await before?.db?.close();
      releasePresigners(before?.options.targets);
      const host = await hostFor(options);
      const secret = secretOf(options);
      const specs = targetSpecs(options.targets);
      const db = await host.open(options.databasePath, { ...secret, create: options.create, journalMode: options.journalMode, cipher: options.cipher })
        .catch((e) => { if (options.whenMissing === 'backups-only' && !options.create && e instanceof DatabaseNotFoundError) return null; throw e; });
      const backups = new BackupService({
        ...secret, host, databasePath: options.databasePath, backupDir: options.backupDir,
        maxBackups: options.maxBackups, maxAgeDays: options.maxAgeDays, prefix: options.prefix,
        incremental: options.incremental, generations: options.generations,
        keyProfile: options.cipher ? { ...sqlcipher4, cipher: options.cipher } : undefined, targets: specs,
      });
      state = { db, backups, host, options: { ...options, password: undefined, key: undefined }, secret };
      return { databasePath: options.databasePath, database: db ? 'open' : 'missing' };
    },
    /** Whether the database is open ('missing' after open() with whenMissing: 'backups-only' until a restore). */
    databaseState: (): 'open' | 'missing' => (live().db ? 'open' : 'missing'),
    exec: (sql: string): Promise<void> => liveDb().exec(sql),
    query: <T extends Row = Row>(sql: string, params?: Params): Promise<T[]> => liveDb().query<T>(sql, params),
    run: (sql: string, params?: Params): Promise<RunResult> => liveDb().run(sql, params),
    /** Runs the statements in one transaction (functions cannot cross the worker boundary). */
    batch: (statements: Array<{ sql: string; params?: Params }>): Promise<RunResult[]> =>
      liveDb().transaction(async (tx) => {
        const results: RunResult[] = [];
        for (const s of statements) results.push(await tx.run(s.sql, s.params));
        return results;
      }),

    async createBackup(options: { force?: boolean; incremental?: boolean } = {}, onProgress?: OnProgress): Promise<BackupResult> {
      const r = await live().backups.createBackup({ ...options, onProgress });
      if (r.success && !r.existing && r.generation === undefined) await remember(r.backupPath);
      return r;
    },
    async verifyBackup(path: string, onProgress?: OnProgress): Promise<VerifyResult> {
      const r = await live().backups.verifyBackup(path, { onProgress });
      if (r.ok) await remember(path);
      return r;
    },
    async listBackups(): Promise<CatalogEntry[]> {
      const s = live();
      return Promise.all(
        (await s.backups.listBackups()).map(async (b) => ({ ...b, verifiedAt: await s.host.catalog?.get<string>(catalogKey(b.path)) })),
      );
    },
    getLatestBackup: (): Promise<BackupInfo | null> => live().backups.getLatestBackup(),
    cleanupOldBackups: (): Promise<number> => live().backups.cleanupOldBackups(),
    async purgeAndRefresh(onProgress?: OnProgress): Promise<BackupResult> {
      const r = await live().backups.purgeAndRefresh({ onProgress });
      if (r.success) await remember(r.backupPath);
      return r;
    },

    /** Rekeys the database and replaces every backup; the connection is reopened under the new password. */
    async changePassword(next: { password?: string; key?: Uint8Array }, onProgress?: OnProgress): Promise<BackupResult> {
      liveDb();
      const s = live();
      const secret = secretOf(next);
      return withDatabaseClosed(async () => {
        const r = await s.backups.changePassword(secret, { onProgress });
        // Whatever became of the backups, the database now opens with exactly one of the two.
        const rekeyed = await s.host.open(s.options.databasePath, { ...secret, cipher: s.options.cipher }).then((d) => d.close().then(() => true), () => false);
        if (rekeyed) s.secret = secret;
        if (r.success) await remember(r.backupPath);
        return r;
      });
    },
    restoreBackup: (path: string, onProgress?: OnProgress): Promise<RestoreResult> =>
      withDatabaseClosed(() => live().backups.restoreBackup(path, { onProgress })),
    ...generationsApi(() => live().backups, withDatabaseClosed),

    /** The off-site targets' ids (e.g. `folder:backups`, `s3 (presigned) user-42/`), in the order backups go to them. */
    targetIds: (): string[] => live().backups.targets.ids,
    /** This database's backups on a target (every backup there while the database is missing), newest first. */
    listTargetBackups: (target: string): Promise<TargetBackupInfo[]> => live().backups.targets.list(target),
    getLatestTargetBackup: (target: string): Promise<TargetBackupInfo | null> => live().backups.targets.latest(target),
    /** Each target's retention; one result per target. */
    pruneTargets: (): Promise<TargetResult[]> => live().backups.targets.prune(),
    /** Downloads a backup from the target and verifies it fully; a target that cannot deliver it rejects with its code. */
    verifyTargetBackup: (target: string, name: string, onProgress?: OnProgress): Promise<VerifyResult> =>
      live().backups.targets.verify(target, name, { onProgress }),
    /** Replaces the database with a backup from the target (downloaded, verified, swapped in); opens it when it was missing. */
    restoreTargetBackup: (target: string, name: string, onProgress?: OnProgress): Promise<RestoreResult> =>
      withDatabaseClosed(() => live().backups.targets.restore(target, name, { onProgress })),
    /** Copies a backup from the target into the local backup directory, verified before it is listed. */
    async importTargetBackup(target: string, name: string, onProgress?: OnProgress): Promise<BackupResult> {
      const r = await live().backups.targets.import(target, name, { onProgress });
      if (r.success) await remember(r.backupPath);
      return r;
    },

    /** A backup's bytes as a stream, for downloads. Transfer it; never clone it whole. */
    exportBackup(path: string): ReadableStream<Uint8Array> {
      const chunks = live().backups.readBackup(path);
      const stream = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const next = await chunks.next();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        },
        async cancel() {
          await chunks.return(undefined);
        },
      });
      return Comlink.transfer(stream, [stream as unknown as Transferable]);
    },
    /**
     * Copies a backup to a folder the page picked (its FileSystemDirectoryHandle,
     * posted here), whole or not at all, under the backup's own name.
     * TARGET_DENIED when the browser has dropped the folder's permission.
     */
    async copyBackupToFolder(path: string, folder: FileSystemDirectoryHandle, onProgress?: OnProgress): Promise<{ name: string; sizeBytes: number }> {
      const s = live();
      const backup = (await s.backups.listBackups()).find((b) => b.path === path);
      if (!backup) throw new InvalidArgumentError(`not a backup of this service: ${path}`);
      const chunks = s.backups.readBackup(path);
      try {
        await new FolderTarget(folder).put(backup.filename, backup.sizeBytes, sequentialSource(chunks),
          (done) => void onProgress?.({ phase: 'copy', bytesDone: done, bytesTotal: backup.sizeBytes }));
      } finally {
        await chunks.return(undefined);
      }
      return { name: backup.filename, sizeBytes: backup.sizeBytes };
    },
    /** Accepts a backup file (a Blob or a stream of bytes); it is verified before it is listed. */
    async importBackup(source: Blob | ReadableStream<Uint8Array>, onProgress?: OnProgress): Promise<BackupResult> {
      const stream = source instanceof Blob ? source.stream() : source;
      const sizeHint = source instanceof Blob ? source.size : undefined;
      const r = await live().backups.importBackup(iterate(stream), { onProgress, sizeHint });
      if (r.success) await remember(r.backupPath);
      return r;
    },

    /** The worker's memory: the wasm heap, and the JS heap where the runtime reports it. */
    memoryUsage(): { wasmBytes: number | null; jsHeapBytes: number | null } {
      const heap = (globalThis.performance as { memory?: { usedJSHeapSize: number } } | undefined)?.memory?.usedJSHeapSize;
      return { wasmBytes: state?.host.engineMemoryBytes?.() ?? null, jsHeapBytes: heap ?? null };
    },

    /** What the page-check pool has done; null where the host has none (Node's pool is not counted). */
    pageCheckStats(): PagePoolStats | null {
      return state?.host.pageCheckStats?.() ?? null;
    },

    async close(): Promise<void> {
      const s = state;
      state = null;
      await s?.db?.close();
      releasePresigners(s?.options.targets);
    },
  };
}

export type KeepApi = ReturnType<typeof createKeepApi>;

/** Lets go of the proxies of the page's presign callbacks (each holds a MessagePort open). */
function releasePresigners(targets: KeepTarget[] | undefined): void {
  for (const t of targets ?? []) (t.s3?.presign as Partial<Comlink.Remote<object>> | undefined)?.[Comlink.releaseProxy]?.();
}

async function* iterate(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}
