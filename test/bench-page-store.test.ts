/**
 * `npm run bench:pages` end to end at a tiny size, so the command keeps
 * working: every measure is taken and both files are written. The figures
 * are not judged here — speed is the benchmark's business, never a test's.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { tempDir } from './helpers.ts';

const root = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');

describe('page store benchmark', () => {
  it('measures full backups, generations, the store size and restores of a 2 MB database, and writes text and JSON', { timeout: 240_000 }, () => {
    const out = tempDir('bench-pages');
    execFileSync('node', ['--import', 'tsx', 'bench/page-store.ts', '--size', '2', '--days', '3', '--reps', '1', '--out', out, '--name', 'smoke'], {
      cwd: root, stdio: 'pipe', timeout: 240_000,
    });
    const r = JSON.parse(fs.readFileSync(path.join(out, 'smoke.json'), 'utf8'));
    assert.equal(r.generations.length, 3);
    assert.equal(r.generations[0].full, 1);
    assert.equal(r.generations[1].full, 0);
    for (const [name, value] of Object.entries({
      full: r.fullBackup.copyPlusCheckMs, createBackup: r.fullBackup.createBackupMs, incremental: r.incremental.createBackupMsMedian,
      written: r.incremental.bytesWrittenMedian, store: r.store.bytes, restore: r.restore.newestMs, copy: r.restore.copyFullBackupMs,
    })) assert.ok(Number(value) > 0, `${name} measured: ${value}`);
    assert.ok(r.changedPagesMedianPct > 0.5 && r.changedPagesMedianPct < 3, `about 1% of pages changed a day: ${r.changedPagesMedianPct}`);
    assert.match(fs.readFileSync(path.join(out, 'smoke.txt'), 'utf8'), /\| restore newest generation \(assemble \+ check every page\) \| \d+ ms/);
  });
});
