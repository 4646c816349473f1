/**
 * `npm run bench` end to end at a tiny size with its browser columns (the
 * Node suite runs it with --no-browser): Chromium with an on-disk profile and
 * a private window. The bench starts its own server and browser; the figures
 * are not judged — speed is the benchmark's business, never a test's.
 */
import { test, expect } from '@playwright/test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const root = path.resolve(import.meta.dirname, '../..');

test('the benchmark measures a 2 MB database on native, Node, Chromium and a private window', () => {
  test.setTimeout(300_000);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cipherkeep-bench-'));
  try {
    // NO_BUILD: the bench's server serves the bundles this suite's server already built.
    execFileSync('node', ['--import', 'tsx', 'bench/run.ts', '--sizes', '2', '--reps', '1', '--modes', 'wal', '--out', out, '--name', 'smoke'], {
      cwd: root, stdio: 'pipe', timeout: 280_000, env: { ...process.env, NO_BUILD: '1' },
    });
    const { rows } = JSON.parse(fs.readFileSync(path.join(out, 'smoke.json'), 'utf8'));
    expect(rows).toHaveLength(1);
    const [row] = rows;
    for (const column of ['native', 'cipherkeep', 'browser', 'privateWindow']) {
      expect(row[column]?.total?.median, `${column} measured: ${JSON.stringify(row[column])}`).toBeGreaterThan(0);
      expect(row[column].peakRssGrowthMB, `${column} memory measured`).toBeGreaterThanOrEqual(0);
    }
    for (const [ratio, value] of Object.entries(row.ratios)) expect(Number(value), ratio).toBeGreaterThan(0);
    expect(fs.readFileSync(path.join(out, 'smoke.svg'), 'utf8')).toMatch(/^<svg[^]*cipherkeep, Chromium OPFS[^]*<\/svg>$/);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
