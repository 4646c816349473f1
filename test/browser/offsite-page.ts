/**
 * The page side of the off-site browser tests, loaded into the harness page.
 * Playwright cannot click the folder picker, so `stubPicker` makes
 * `showDirectoryPicker()` return a real FileSystemDirectoryHandle: a folder
 * in OPFS. Everything after the picker is real (the handle, createWritable,
 * move, IndexedDB, the worker). The permission a browser drops between
 * visits cannot be dropped from a test either: `permissions` replaces
 * queryPermission/requestPermission on FileSystemHandle with a state the test
 * sets, and requestPermission, like Chromium's, refuses without a user gesture.
 */
import { FolderTarget } from '../../src/targets/folder-target.ts';
import { targetCases } from '../contract/target.contract.ts';

const MIB = 1 << 20;
type Picker = (o?: unknown) => Promise<FileSystemDirectoryHandle>;
type Proto = { queryPermission?: unknown; requestPermission?: unknown };

async function opfsDir(name: string): Promise<FileSystemDirectoryHandle> {
  return (await navigator.storage.getDirectory()).getDirectoryHandle(name, { create: true });
}

let serial = 0;
let permission: PermissionState = 'granted';
const original: Proto = {};

const offsite = {
  /** showDirectoryPicker() now returns the OPFS folder `name` (made if missing). */
  stubPicker(name: string) {
    (window as unknown as { showDirectoryPicker: Picker }).showDirectoryPicker = () => opfsDir(name);
  },
  /** No File System Access, as in Firefox and Safari. */
  removePicker() {
    delete (window as unknown as { showDirectoryPicker?: Picker }).showDirectoryPicker;
    (window as unknown as { showDirectoryPicker?: Picker }).showDirectoryPicker = undefined;
  },
  /** Every handle's permission is `state` until requestPermission is called during a user gesture. */
  permissions(state: PermissionState) {
    const proto = FileSystemHandle.prototype as unknown as Proto;
    if (!('queryPermission' in original)) Object.assign(original, { queryPermission: proto.queryPermission, requestPermission: proto.requestPermission });
    permission = state;
    proto.queryPermission = async () => permission;
    proto.requestPermission = async () => {
      if (!navigator.userActivation.isActive) throw new DOMException('User activation is required to request permissions.', 'SecurityError');
      permission = 'granted';
      return permission;
    };
  },
  /** `withoutMove`: as in a browser whose file handles have no move() (the target then writes under the name). */
  async runCase(name: string, withoutMove = false) {
    const c = targetCases.find((x) => x.name === name);
    if (!c) throw new Error(`no case ${name}`);
    const proto = FileSystemFileHandle.prototype as { move?: unknown };
    const move = proto.move;
    if (withoutMove) delete proto.move;
    try {
      return await this.runIn(c);
    } finally {
      if (withoutMove) proto.move = move;
    }
  },
  async runIn(c: (typeof targetCases)[number]) {
    const root = await opfsDir('folder-contract');
    const fresh = async () => new FolderTarget(await root.getDirectoryHandle(`t-${Date.now()}-${serial++}`, { create: true }));
    await c.run({ fresh, largeSize: 10 * MIB });
    // Nothing left behind: no temporary or swap file in any of the case's folders.
    for await (const [dir, handle] of root as unknown as AsyncIterable<[string, FileSystemDirectoryHandle]>) {
      for await (const [file] of handle as unknown as AsyncIterable<[string, FileSystemHandle]>) {
        if (file.startsWith('.cipherkeep-partial-') || file.endsWith('.crswap')) throw new Error(`left behind: ${dir}/${file}`);
      }
    }
    return 'ok';
  },
  /** Names in the OPFS folder `name`. */
  async names(name: string): Promise<string[]> {
    const out: string[] = [];
    for await (const [n] of (await opfsDir(name)) as unknown as AsyncIterable<[string, FileSystemHandle]>) out.push(n);
    return out.sort();
  },
  /** SHA-256 (hex) of a file's bytes, in OPFS by path or in a folder handle by name. */
  async digest(file: File): Promise<string> {
    const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', await file.arrayBuffer()));
    return Array.from(hash, (b) => b.toString(16).padStart(2, '0')).join('');
  },
  async opfsFile(path: string): Promise<File> {
    let dir = await navigator.storage.getDirectory();
    const parts = path.split('/').filter(Boolean);
    for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p);
    return (await dir.getFileHandle(parts.at(-1)!)).getFile();
  },
};

declare global {
  interface Window {
    offsite: typeof offsite;
    FolderTarget: typeof FolderTarget;
  }
}
window.offsite = offsite;
window.FolderTarget = FolderTarget;
document.title = 'offsite ready';
