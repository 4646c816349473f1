/**
 * `npm run bench` end to end at a tiny size, so the documented command keeps
 * working: every Node column is measured and every file written. The figures
 * are not judged here — speed is the benchmark's business, never a test's.
 * This suite needs no browser (`--no-browser`); the Chromium columns are run
 * by the browser suite (test/browser/bench.spec.ts).
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { tempDir } from './helpers.ts';

const root = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');

describe('benchmark', () => {
  it('measures a 2 MB database on native and Node without a browser, and writes text, JSON and SVG', () => {
    const out = tempDir('bench');
    execFileSync('node', ['--import', 'tsx', 'bench/run.ts', '--sizes', '2', '--reps', '1', '--modes', 'wal', '--no-browser', '--out', out, '--name', 'smoke'], {
      cwd: root, stdio: 'pipe', timeout: 240_000,
    });
    const { rows } = JSON.parse(fs.readFileSync(path.join(out, 'smoke.json'), 'utf8'));
    assert.equal(rows.length, 1);
    const [row] = rows;
    assert.equal(row.workload, 'notes-2mb-wal');
    for (const column of ['native', 'cipherkeep']) {
      assert.ok(row[column]?.total?.median > 0, `${column} measured: ${JSON.stringify(row[column])}`);
      assert.ok(row[column].peakRssGrowthMB >= 0, `${column} memory measured`);
    }
    assert.equal(row.browser, null, 'no browser was run');
    assert.ok(row.ratios.backupTimeVsNative > 0 && row.ratios.backupTimeVsCopy > 0 && row.ratios.exportSpeedVsCopy > 0, JSON.stringify(row.ratios));
    assert.match(fs.readFileSync(path.join(out, 'smoke.txt'), 'utf8'), /notes-2mb-wal .*skipped/m);
    assert.match(fs.readFileSync(path.join(out, 'smoke.svg'), 'utf8'), /^<svg[^]*cipherkeep, Node[^]*<\/svg>$/);
    // The off-site column at the same size, against Swift (started by the bench when needed).
    const { offsite } = JSON.parse(fs.readFileSync(path.join(out, 'smoke.json'), 'utf8'));
    if (offsite.skipped && !process.env.CI) {
      console.log(`off-site column skipped: ${offsite.skipped}`);
    } else {
      assert.ok(offsite.oursMs > 0 && offsite.curlMs > 0 && offsite.service.uploadMs > 0 && offsite.service.readBackMs > 0, JSON.stringify(offsite));
      assert.match(fs.readFileSync(path.join(out, 'smoke.txt'), 'utf8'), /^off-site: 2 MB to Swift/m);
    }
  });
});
