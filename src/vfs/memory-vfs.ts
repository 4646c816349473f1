/**
 * SQLite VFS keeping files in JS memory. For tests and throwaway databases; it
 * runs the same lock and WAL-index code as the filesystem VFS, so the shared
 * contract suite exercises both alike.
 */
import { HostVFS, type PathInfo } from './host-vfs.ts';

interface MemoryFile {
  data: Uint8Array;
  size: number;
}

export class MemoryVFS extends HostVFS<MemoryFile> {
  readonly files = new Map<string, MemoryFile>();

  protected openHandle(path: string | null, create: boolean): MemoryFile | null {
    if (path === null) return { data: new Uint8Array(0), size: 0 };
    let file = this.files.get(path);
    if (!file && create) {
      file = { data: new Uint8Array(0), size: 0 };
      this.files.set(path, file);
    }
    return file ?? null;
  }

  protected closeHandle(_file: MemoryFile, deleteOnClose: boolean, path: string): void {
    if (deleteOnClose) this.files.delete(path);
  }

  protected readAt(file: MemoryFile, into: Uint8Array, offset: number): number {
    const n = Math.max(0, Math.min(into.length, file.size - offset));
    into.set(file.data.subarray(offset, offset + n));
    return n;
  }

  protected writeAt(file: MemoryFile, data: Uint8Array, offset: number): void {
    const end = offset + data.length;
    if (end > file.data.length) {
      const grown = new Uint8Array(Math.max(end, file.data.length * 2));
      grown.set(file.data.subarray(0, file.size));
      file.data = grown;
    }
    file.data.set(data, offset);
    file.size = Math.max(file.size, end);
  }

  protected truncateTo(file: MemoryFile, size: number): void {
    if (size < file.size) file.data.fill(0, size, file.size);
    file.size = Math.min(file.size, size);
  }

  protected syncHandle(): void {}

  protected sizeOf(file: MemoryFile): number {
    return file.size;
  }

  deleteFile(path: string): boolean {
    return this.files.delete(path);
  }

  info(path: string): PathInfo {
    return { size: this.files.get(path)?.size ?? null, parentExists: true };
  }

  resolve(path: string): string {
    return '/' + path.replace(/^\/+/, '');
  }

  readRange(path: string, offset: number, into: Uint8Array): number | null {
    const file = this.files.get(path);
    if (!file) return null;
    const bytes = file.data.subarray(offset, Math.max(offset, Math.min(offset + into.length, file.size)));
    into.set(bytes);
    return bytes.length;
  }
}
