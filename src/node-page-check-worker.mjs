// A worker thread of the Node/Deno page-check pool (src/node-page-check.ts):
// checks the SQLCipher page HMACs of one range of a file with node:crypto's
// native HMAC. Plain JavaScript on purpose: it starts the same from the
// sources and from dist/, with no loader. Layout as in src/backup/page-check.ts.
import { parentPort } from 'node:worker_threads';
import { createHmac, pbkdf2Sync } from 'node:crypto';
import { openSync, readSync, closeSync } from 'node:fs';

const HASH = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' };
const MAC_BYTES = { SHA1: 20, SHA256: 32, SHA512: 64 };
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
  const macBytes = MAC_BYTES[hmacAlgorithm];
  const hmacKey = pbkdf2Sync(key, Buffer.from(salt).map((b) => b ^ 0x3a), 2, 32, HASH[kdfAlgorithm]);
  const pgno = Buffer.alloc(4);
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
        const page = buffer.subarray(i * pageSize, (i + 1) * pageSize);
        pgno.writeUInt32LE(first + i + 1);
        const mac = createHmac(HASH[hmacAlgorithm], hmacKey).update(page.subarray(first + i === 0 ? SALT_BYTES : 0, covered)).update(pgno).digest();
        if (!mac.subarray(0, macBytes).equals(page.subarray(covered, covered + macBytes))) return { ok: false, page: first + i + 1 };
      }
      if (count < want / pageSize) return { ok: false, page: first + count + 1 }; // the file ended early
      parentPort.postMessage({ id, progress: count * pageSize });
    }
    return { ok: true };
  } finally {
    closeSync(fd);
  }
}
