/** The pinned engine: checksum enforced, versions as documented. */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { createEngine, ENGINE_PIN, EngineLoadError, fetchEngine, MemoryVFS, openDatabaseWith } from '../src/index.ts';
import { nodeEngine, openDatabase, readEngineWasm } from '../src/node.ts';
import { tempDir } from './helpers.ts';
import path from 'node:path';

describe('engine', () => {
  it('the installed wasm matches the pinned SHA-256', async () => {
    const bytes = await readEngineWasm();
    assert.equal(createHash('sha256').update(bytes).digest('hex'), ENGINE_PIN.sha256);
  });

  it('refuses wasm bytes that do not match the pin', async () => {
    const bytes = await readEngineWasm();
    bytes[bytes.length - 1]! ^= 0xff;
    await assert.rejects(createEngine(bytes), (e: unknown) => e instanceof EngineLoadError && /checksum mismatch/.test(e.message));
  });

  it('runs the documented SQLite and SQLite3 Multiple Ciphers versions', async () => {
    const db = await openDatabase(path.join(tempDir('engine'), 'v.db'), { password: 'pw', create: true, cipher: { kdfIterations: 1000 } });
    const [row] = await db.query('SELECT sqlite_version() AS sqlite, sqlite3mc_version() AS mc');
    await db.close();
    assert.equal(row!.sqlite, ENGINE_PIN.sqlite);
    assert.match(String(row!.mc), new RegExp(`SQLite3 Multiple Ciphers ${ENGINE_PIN.sqlite3mc.replace(/\./g, '\\.')}`));
  });

  it('loads from a URL the way browsers do, and reports a failed fetch clearly', async () => {
    const bytes = await readEngineWasm();
    const server = http.createServer((req, res) => {
      if (req.url !== '/engine.wasm') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/wasm' }).end(bytes);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const engine = await fetchEngine(`${base}/engine.wasm`);
      const name = engine.registerVFS(new MemoryVFS('url-loaded', engine.module));
      const db = await openDatabaseWith(engine, name, 'x.db', { password: 'pw', create: true, cipher: { kdfIterations: 1000 } });
      assert.deepEqual(await db.query('SELECT 1 + 1 AS two'), [{ two: 2 }]);
      await db.close();
      await assert.rejects(fetchEngine(`${base}/missing.wasm`), (e: unknown) => e instanceof EngineLoadError && /HTTP 404/.test(e.message));
    } finally {
      server.close();
    }
  });

  it('one engine per thread, created once', async () => {
    assert.equal(await nodeEngine(), await nodeEngine());
  });
});
