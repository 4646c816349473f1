/** The WebCrypto page-HMAC check agrees with SQLCipher's layout and catches every changed page. */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pbkdf2Sync } from 'node:crypto';
import { openDatabase } from '../src/node.ts';
import { checkPageHmacs } from '../src/backup/page-check.ts';
import { resolveSettings, type CipherSettings } from '../src/engine/cipher.ts';
import { tempDir, withNative } from './helpers.ts';

const dir = tempDir('pages');
const reader = (bytes: Uint8Array) => async (offset: number, into: Uint8Array) => {
  const part = bytes.subarray(offset, offset + into.length);
  into.set(part);
  return part.length;
};

async function made(cipher: CipherSettings, rows = 3000) {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const file = path.join(dir, `p-${Math.random().toString(36).slice(2)}.db`);
  const db = await openDatabase(file, { key, create: true, cipher });
  await db.exec(`CREATE TABLE t (v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < ${rows}) INSERT INTO t SELECT randomblob(50) FROM c; DELETE FROM t WHERE rowid % 3 = 0`);
  await db.close();
  return { key, bytes: new Uint8Array(fs.readFileSync(file)), settings: resolveSettings(cipher) };
}

describe('page HMAC check', () => {
  for (const cipher of [{}, { hmacAlgorithm: 'SHA256' }, { hmacAlgorithm: 'SHA1', pageSize: 1024 }, { pageSize: 16384, kdfAlgorithm: 'SHA256' }, { hmacAlgorithm: 'SHA256', kdfAlgorithm: 'SHA1' }] as CipherSettings[]) {
    it(`accepts a good file and names the first changed page (${JSON.stringify(cipher)})`, async () => {
      const { key, bytes, settings } = await made(cipher);
      const pages = bytes.length / settings.pageSize;
      assert.deepEqual(await checkPageHmacs(reader(bytes), bytes.length, key, settings), { ok: true, pages });
      for (const pgno of [1, 2, Math.ceil(pages / 2), pages]) {
        const hmacStart = settings.pageSize - (settings.hmacAlgorithm === 'SHA512' ? 64 : 32);
        // ciphertext, IV, HMAC (SHA1's 20-byte HMAC leaves 12 unused bytes at the end of its slot)
        for (const offsetInPage of [17, settings.pageSize - 90, hmacStart - 1, hmacStart + 5]) {
          const bad = bytes.slice();
          bad[(pgno - 1) * settings.pageSize + offsetInPage]! ^= 0x01;
          assert.deepEqual(await checkPageHmacs(reader(bad), bad.length, key, settings), { ok: false, page: pgno }, `page ${pgno} byte ${offsetInPage}`);
        }
      }
      const swapped = bytes.slice();
      swapped.copyWithin(settings.pageSize, 2 * settings.pageSize, 3 * settings.pageSize); // page 3's bytes at page 2
      assert.deepEqual(await checkPageHmacs(reader(swapped), swapped.length, key, settings), { ok: false, page: 2 });
      const zeroed = bytes.slice();
      zeroed.fill(0, (pages - 1) * settings.pageSize);
      assert.deepEqual(await checkPageHmacs(reader(zeroed), zeroed.length, key, settings), { ok: false, page: pages });
      const otherKey = crypto.getRandomValues(new Uint8Array(32));
      assert.deepEqual(await checkPageHmacs(reader(bytes), bytes.length, otherKey, settings), { ok: false, page: 1 });
    });
  }

  it('checks files of several 4 MiB chunks, and a file shorter than its size', async () => {
    const { key, bytes, settings } = await made({ pageSize: 1024 }, 160_000);
    const pages = bytes.length / settings.pageSize;
    assert.ok(pages > 2 * 4096, `${pages} pages span three chunks`);
    // Timers run between chunks: the check never holds the thread for more than one.
    let ticks = 0;
    let counting = false;
    const timer = setInterval(() => counting && ticks++, 0);
    try {
      assert.deepEqual(await checkPageHmacs(reader(bytes), bytes.length, key, settings, () => void (counting = true)), { ok: true, pages });
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks > 0, 'a timer ran while the check was under way');
    for (const pgno of [4096, 4097, pages]) {
      const bad = bytes.slice();
      bad[(pgno - 1) * settings.pageSize + 100]! ^= 0x80;
      assert.deepEqual(await checkPageHmacs(reader(bad), bad.length, key, settings), { ok: false, page: pgno });
    }
    const short = bytes.subarray(0, 4096 * settings.pageSize);
    assert.deepEqual(await checkPageHmacs(reader(short), bytes.length, key, settings), { ok: false, page: 4097 });
  });

  it('checks files written by native SQLCipher too', async () => {
    const file = path.join(dir, 'native.db');
    withNative(file, ["key = 'pw'"], (db) => db.exec("CREATE TABLE t (v); INSERT INTO t VALUES ('native')"));
    const bytes = new Uint8Array(fs.readFileSync(file));
    const key = new Uint8Array(pbkdf2Sync('pw', bytes.subarray(0, 16), 256_000, 32, 'sha512'));
    const settings = resolveSettings({});
    assert.deepEqual(await checkPageHmacs(reader(bytes), bytes.length, key, settings), { ok: true, pages: bytes.length / 4096 });
  });
});
