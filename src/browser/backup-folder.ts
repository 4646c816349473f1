/**
 * The page's side of a backup folder the user picks: the picker, the handle
 * kept in IndexedDB (idb-keyval) so it survives reloads, and the permission
 * the browser may drop between visits (Chromium keeps it for the session,
 * or for good once the user chose "allow on every visit"). The bytes are
 * written by the worker (`keep.copyBackupToFolder(path, handle)`), off the
 * page's thread.
 *
 * Only the page can show the picker and ask for permission again, and only
 * on a user gesture (a click): `state()` tells the page when to offer the
 * button ("backups paused: permission needed").
 */
import { del, get, set } from 'idb-keyval';
import { TargetDeniedError, UnsupportedError } from '../engine/errors.ts';

/**
 * - `ready`: backups can go to the folder now;
 * - `permission-needed`: a folder is kept, but the browser needs the user to allow it again (call `requestAccess()` from a click);
 * - `no-folder`: none picked yet (call `pick()` from a click);
 * - `unsupported`: no File System Access in this browser (Firefox, Safari): offer downloads instead (`downloadBackup`).
 */
export type FolderState = 'ready' | 'permission-needed' | 'no-folder' | 'unsupported';

type Picker = (options: { id?: string; mode: 'readwrite'; startIn?: string }) => Promise<FileSystemDirectoryHandle>;
type Permissioned = FileSystemDirectoryHandle & {
  queryPermission?(d: { mode: 'readwrite' }): Promise<PermissionState>;
  requestPermission?(d: { mode: 'readwrite' }): Promise<PermissionState>;
};

const picker = () => (globalThis as { showDirectoryPicker?: Picker }).showDirectoryPicker;

export interface BackupFolder {
  /** Whether this browser can pick a folder at all. */
  readonly supported: boolean;
  state(): Promise<FolderState>;
  /** Shows the folder picker (call from a click), keeps the folder, and returns its handle. UNSUPPORTED where there is no picker. */
  pick(): Promise<FileSystemDirectoryHandle>;
  /** Asks the user to allow the kept folder again (call from a click); the state after asking. */
  requestAccess(): Promise<FolderState>;
  /** The kept folder's handle, to post to the worker; null when none is kept. */
  handle(): Promise<FileSystemDirectoryHandle | null>;
  /** Forgets the kept folder (the folder and its files stay on disk). */
  forget(): Promise<void>;
}

/** A kept backup folder; `name` tells several apart (default 'default'). */
export function backupFolder(name = 'default'): BackupFolder {
  const key = `cipherkeep:backup-folder:${name}`;
  const kept = async () => (picker() ? ((await get<FileSystemDirectoryHandle>(key)) ?? null) : null);
  const stateOf = async (dir: FileSystemDirectoryHandle | null): Promise<FolderState> => {
    if (!picker()) return 'unsupported';
    if (!dir) return 'no-folder';
    const query = (dir as Permissioned).queryPermission;
    return !query || (await query.call(dir, { mode: 'readwrite' })) === 'granted' ? 'ready' : 'permission-needed';
  };
  return {
    get supported() {
      return !!picker();
    },
    state: async () => stateOf(await kept()),
    async pick() {
      const show = picker();
      if (!show) {
        throw new UnsupportedError('this browser cannot pick a folder (no File System Access API, e.g. Firefox or Safari): save backups with downloadBackup() instead');
      }
      // `id` makes the picker reopen where this app's folder was.
      const dir = await show({ id: `cipherkeep-${name}`.slice(0, 32).replace(/[^\w-]/g, '_'), mode: 'readwrite' });
      await set(key, dir);
      return dir;
    },
    async requestAccess() {
      const dir = await kept();
      const request = (dir as Permissioned | null)?.requestPermission;
      if (dir && request) {
        await request.call(dir, { mode: 'readwrite' }).catch((e: unknown) => {
          // Chromium refuses without a user gesture (SecurityError).
          throw new TargetDeniedError(`folder:${dir.name}: the browser would not ask (${(e as Error).name}): call requestAccess() from a click`, { cause: e });
        });
      }
      return stateOf(dir);
    },
    handle: kept,
    forget: () => del(key),
  };
}
