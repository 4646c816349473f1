/**
 * `npm run bench` end to end at a tiny size, so the documented command keeps
 * working: every column is measured and every file written. The figures are
 * not judged here — speed is the benchmark's business, never a test's.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { tempDir } from './helpers.ts';

const root = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');

describe('benchmark', () => {
  it('measures a 2 MB database on native, Node, Chromium and a private window, and writes text, JSON and SVG', () => {
    const out = tempDir('bench');
    execFileSync('node', ['--import', 'tsx', 'bench/run.ts', '--sizes', '2', '--reps', '1', '--modes', 'wal', '--out', out, '--name', 'smoke'], {
      cwd: root, stdio: 'pipe', timeout: 240_000,
    });
    const { rows } = JSON.parse(fs.readFileSync(path.join(out, 'smoke.json'), 'utf8'));
    assert.equal(rows.length, 1);
    const [row] = rows;
    assert.equal(row.workload, 'notes-2mb-wal');
    for (const column of ['native', 'cipherkeep', 'browser', 'privateWindow']) {
      assert.ok(row[column]?.total?.median > 0, `${column} measured: ${JSON.stringify(row[column])}`);
      assert.ok(row[column].peakRssGrowthMB >= 0, `${column} memory measured`);
    }
    for (const [ratio, value] of Object.entries(row.ratios)) assert.ok(Number(value) > 0, `${ratio} = ${value}`);
    assert.match(fs.readFileSync(path.join(out, 'smoke.txt'), 'utf8'), /notes-2mb-wal .*x$/m);
    assert.match(fs.readFileSync(path.join(out, 'smoke.svg'), 'utf8'), /^<svg[^]*cipherkeep, Chromium OPFS[^]*<\/svg>$/);
  });
});
