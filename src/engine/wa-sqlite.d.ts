// Types for the parts of @journeyapps/wa-sqlite that its own typings omit.
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
