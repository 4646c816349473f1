// Types for modules whose own typings omit what we use (wa-sqlite internals, Comlink's Node adapter).
declare module '@journeyapps/wa-sqlite/src/FacadeVFS.js' {
  export class FacadeVFS {
    constructor(name: string, module: any);
    name: string;
    mxPathname: number;
    _module: any;
    isReady(): boolean | Promise<boolean>;
    close(): void | Promise<void>;
  }
}
declare module '@journeyapps/wa-sqlite/src/VFS.js' {
  export * from '@journeyapps/wa-sqlite/src/sqlite-constants.js';
}

declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { Endpoint } from 'comlink';
  export default function nodeEndpoint(nep: {
    postMessage(message: any, transfer?: any[]): void;
    on(type: string, listener: (...a: any[]) => void): void;
    off(type: string, listener: (...a: any[]) => void): void;
  }): Endpoint;
}
