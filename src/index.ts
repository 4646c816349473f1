/**
 * Runtime-agnostic exports. Hosts add their entry point: `cipherkeep/node`
 * (Node and Deno over the filesystem).
 */
export { createEngine, fetchEngine, type Engine, type EngineOptions } from './engine/engine.ts';
export {
  Database, openDatabase as openDatabaseWith,
  type OpenOptions, type Params, type Row, type RunResult, type SqlValue, type Transaction, type JournalMode,
} from './engine/database.ts';
export { SQLCIPHER4_DEFAULTS, type CipherSettings, type HashAlgorithm, type KeyMaterial } from './engine/cipher.ts';
export * from './engine/errors.ts';
export { MemoryVFS } from './vfs/memory-vfs.ts';
export { HostVFS, type PathInfo } from './vfs/host-vfs.ts';
export { ENGINE_PIN } from '../wasm/pin.ts';
