/**
 * The page side of file-target.spec.ts: the target contract on FileTarget
 * over the Origin Private File System, in Chromium, on the page's thread
 * (writes through createWritable) — as a second OPFS directory or a
 * user-picked folder's handle would be used.
 */
import { OpfsFileStore } from '../../src/files/opfs-file-store.ts';
import { FileTarget } from '../../src/targets/file-target.ts';
import { targetCases } from '../contract/target.contract.ts';

const MIB = 1 << 20;
let serial = 0;

declare global {
  interface Window {
    fileTargetPage: { runCase(name: string): Promise<string>; leftovers(): Promise<string[]> };
  }
}

window.fileTargetPage = {
  async runCase(name) {
    const c = targetCases.find((x) => x.name === name);
    if (!c) throw new Error(`no case ${name}`);
    await c.run({ fresh: async () => new FileTarget(new OpfsFileStore(), `/targets/t${serial++}`, { chunkBytes: MIB, create: true }), largeSize: 3 * MIB });
    return 'ok';
  },
  /** Every name under /targets whose name marks a staging file: none may outlive its put. */
  async leftovers() {
    const out: string[] = [];
    const root = await (await navigator.storage.getDirectory()).getDirectoryHandle('targets', { create: true });
    for await (const [dir, entry] of root as unknown as AsyncIterable<[string, FileSystemDirectoryHandle]>) {
      if (entry.kind !== 'directory') continue;
      for await (const [name] of entry as unknown as AsyncIterable<[string, FileSystemHandle]>) if (name.startsWith('.cipherkeep-put-')) out.push(`${dir}/${name}`);
    }
    return out;
  },
};
document.title = 'ready';
