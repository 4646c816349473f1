// A worker thread of the Node/Deno page-check pool (src/node-page-check.ts):
// checks the SQLCipher page HMACs of one range of a file with node:crypto's
// native hashes (node-page-mac.mjs). Plain JavaScript on purpose: it starts
// the same from the sources and from dist/, with no loader. Layout as in
// src/backup/page-check.ts.
import { parentPort } from 'node:worker_threads';
import { pbkdf2Sync } from 'node:crypto';
import { openSync, readSync, closeSync } from 'node:fs';
import { HASH, pageMacCheck } from './node-page-mac.mjs';

const IV_BYTES = 16;
const SALT_BYTES = 16;
const CHUNK_BYTES = 1 << 20;

parentPort.on('message', (task) => {
  try {
    parentPort.postMessage({ id: task.id, ...check(task) });
  } catch (e) {
    parentPort.postMessage({ id: task.id, error: e instanceof Error ? e.message : String(e) });
  }
});

/** Pages from…to-1 (0-based) of the file: { ok: true } or { ok: false, page } (1-based). */
function check({ id, path, key, salt, pageSize, hmacAlgorithm, kdfAlgorithm, from, to }) {
  const reserve = IV_BYTES + (hmacAlgorithm === 'SHA512' ? 64 : 32);
  const covered = pageSize - reserve + IV_BYTES;
  // 32 bytes: shorter than every hash's block, so HMAC uses it as it is.
  const hmacKey = pbkdf2Sync(key, Buffer.from(salt).map((b) => b ^ 0x3a), 2, 32, HASH[kdfAlgorithm]);
  const checkPage = pageMacCheck(hmacAlgorithm, hmacKey, covered);
  const chunkPages = Math.max(1, Math.floor(CHUNK_BYTES / pageSize));
  const buffer = Buffer.alloc(Math.min(chunkPages, to - from) * pageSize);
  const fd = openSync(path, 'r');
  try {
    for (let first = from; first < to; first += chunkPages) {
      const want = Math.min(chunkPages, to - first) * pageSize;
      let got = 0;
      while (got < want) {
        const n = readSync(fd, buffer, got, want - got, first * pageSize + got);
        if (n === 0) break;
        got += n;
      }
      const count = Math.floor(got / pageSize);
      for (let i = 0; i < count; i++) {
        if (!checkPage(buffer, i * pageSize, first + i === 0 ? SALT_BYTES : 0, first + i + 1)) return { ok: false, page: first + i + 1 };
      }
      if (count < want / pageSize) return { ok: false, page: first + count + 1 }; // the file ended early
      parentPort.postMessage({ id, progress: count * pageSize });
    }
    return { ok: true };
  } finally {
    closeSync(fd);
  }
}
