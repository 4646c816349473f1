/**
 * FileTarget: a directory of any FileStore as a backup target. The target
 * contract on the memory store and on the Node/Deno filesystem, and what is
 * particular to it: the staging name never shows, a directory that cannot
 * be made is a typed error.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from './timeouts.ts';
import { MemoryFileStore, MemoryVFS } from '../src/index.ts';
import { NodeFileStore, nodeEngine } from '../src/node.ts';
import { FileTarget } from '../src/targets/file-target.ts';
import { patternBytes, sourceOf, targetCases } from './contract/target.contract.ts';
import { tempDir } from './helpers.ts';

const { engine } = await nodeEngine();
const memory = new MemoryFileStore(new MemoryVFS('cipherkeep-target-memory', engine.module));
const root = tempDir('file-target');
let serial = 0;
const LARGE = 3 << 20;
const chunkBytes = 1 << 20;

describe('FileTarget on the memory store: the target contract', () => {
  for (const c of targetCases) {
    it(c.name, { timeout: 30_000 }, () => c.run({ fresh: async () => new FileTarget(memory, `/t${serial++}`, { chunkBytes, create: true }), largeSize: LARGE }));
  }
});

describe('FileTarget on the filesystem: the target contract', () => {
  for (const c of targetCases) {
    it(c.name, { timeout: 30_000 }, () => c.run({ fresh: async () => new FileTarget(new NodeFileStore(), path.join(root, `t${serial++}`), { chunkBytes, create: true }), largeSize: LARGE }));
  }
});

describe('FileTarget', () => {
  it('an object being written is invisible: list and stat show it only once it is whole', { timeout: 30_000 }, async () => {
    const dir = path.join(root, `t${serial++}`);
    const t = new FileTarget(new NodeFileStore(), dir, { chunkBytes, create: true });
    const data = patternBytes(LARGE, 5);
    let seen: string[] = [];
    await t.put('mid.db', data.length, async (o, l) => {
      if (o > 0) {
        seen = fs.readdirSync(dir);
        assert.deepEqual(await t.list(''), []);
        assert.equal(await t.stat('mid.db'), null);
      }
      return data.slice(o, o + l);
    });
    assert.equal(seen.length, 1, 'one staging file while writing');
    assert.match(seen[0]!, /^\.cipherkeep-put-[0-9a-f]{12}$/);
    assert.deepEqual(fs.readdirSync(dir), ['mid.db']);
    assert.equal(fs.statSync(path.join(dir, 'mid.db')).mode & 0o777, 0o600);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    // Staging names are not object names.
    await assert.rejects(t.stat(seen[0]!), { code: 'INVALID_ARGUMENT' });
  });

  it('a failed put leaves no staging file behind', { timeout: 30_000 }, async () => {
    const dir = path.join(root, `t${serial++}`);
    const t = new FileTarget(new NodeFileStore(), dir, { chunkBytes, create: true });
    await assert.rejects(t.put('x.db', LARGE, async (o, l) => { if (o > 0) throw new Error('gone'); return new Uint8Array(l); }), /gone/);
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it('cleanup removes staging files older than a day, and nothing else', { timeout: 30_000 }, async () => {
    const dir = path.join(root, `t${serial++}`);
    const t = new FileTarget(new NodeFileStore(), dir, { create: true });
    await t.put('kept.db', 3, sourceOf(new Uint8Array(3)));
    fs.writeFileSync(path.join(dir, '.cipherkeep-put-old'), 'x');
    fs.writeFileSync(path.join(dir, '.cipherkeep-put-new'), 'x');
    const dayAgo = new Date(Date.now() - 25 * 3600_000);
    fs.utimesSync(path.join(dir, '.cipherkeep-put-old'), dayAgo, dayAgo);
    fs.utimesSync(path.join(dir, 'kept.db'), dayAgo, dayAgo);
    assert.equal(await t.cleanup(), 1);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['.cipherkeep-put-new', 'kept.db']);
  });

  it('without `create` a missing directory is TARGET_NOT_FOUND and is not made (an unmounted volume stays empty)', { timeout: 30_000 }, async () => {
    const mount = path.join(root, `mnt${serial++}`);
    fs.mkdirSync(mount);
    const t = new FileTarget(new NodeFileStore(), path.join(mount, 'backups'));
    await assert.rejects(t.put('a.db', 3, sourceOf(new Uint8Array(3))), { code: 'TARGET_NOT_FOUND', message: /directory does not exist/ });
    await assert.rejects(t.check(), { code: 'TARGET_NOT_FOUND' });
    assert.deepEqual(fs.readdirSync(mount), [], 'nothing made');
    fs.mkdirSync(path.join(mount, 'backups'));
    await t.check();
    await t.put('a.db', 3, sourceOf(new Uint8Array(3)));
    assert.deepEqual(fs.readdirSync(path.join(mount, 'backups')), ['a.db'], 'the check left nothing behind');
    const m = new FileTarget(memory, '/not-there');
    await assert.rejects(m.put('a.db', 3, sourceOf(new Uint8Array(3))), { code: 'TARGET_NOT_FOUND' });
  });

  it('a directory that cannot be made is a typed error, not a raw errno', { timeout: 30_000 }, async () => {
    const file = path.join(root, `plain-file-${serial++}`);
    fs.writeFileSync(file, 'x');
    const t = new FileTarget(new NodeFileStore(), path.join(file, 'sub'), { create: true });
    const e = await t.put('a.db', 3, sourceOf(new Uint8Array(3))).then(() => null, (err) => err);
    assert.ok(e && typeof e.code === 'string' && /^[A-Z_]+$/.test(e.code) && !/^E[A-Z]+$/.test(e.code), `typed: ${e?.code} ${e?.message}`);
    await assert.rejects(t.check(), (err: { code?: string }) => err.code === e.code);
  });
});
