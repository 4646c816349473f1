/**
 * The one engine build cipherkeep loads, pinned by content. The loader checks
 * the SHA-256 of the wasm bytes before instantiating them; see wasm/README.md in the repository
 * for how to swap in another build.
 */
export const ENGINE_PIN = {
  package: '@journeyapps/wa-sqlite',
  version: '2.0.6',
  /** Synchronous (non-Asyncify) build: every VFS we ship is synchronous. */
  glue: 'dist/mc-wa-sqlite.mjs',
  wasm: 'dist/mc-wa-sqlite.wasm',
  sha256: 'd7032a56e5ad1309a6327d22c45253f8d406d6111713412146a779f3d9a12a5d',
  sqlite: '3.53.0',
  sqlite3mc: '2.3.3',
} as const;
