/**
 * Progress on stderr: a redrawn bar on a terminal, one plain line per phase
 * otherwise (logs and CI), nothing with --quiet.
 */
import type { Progress } from '../backup/backup-service.ts';
import { formatBytes } from './format.ts';

export function progressReporter(mode: 'bar' | 'lines' | 'none'): ((p: Progress) => void) | undefined {
  if (mode === 'none') return undefined;
  let phase = '';
  let lastDraw = 0;
  return (p) => {
    if (mode === 'lines') {
      if (p.phase !== phase) process.stderr.write(`${p.phase}: ${formatBytes(p.bytesTotal)}\n`);
    } else {
      const now = Date.now();
      const finished = p.bytesDone >= p.bytesTotal;
      if (p.phase === phase && now - lastDraw < 80 && !finished) return;
      lastDraw = now;
      const share = p.bytesTotal ? Math.min(1, p.bytesDone / p.bytesTotal) : 1;
      const filled = Math.round(share * 30);
      const size = `${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}`;
      process.stderr.write(`\r${p.phase.padEnd(6)} [${'#'.repeat(filled)}${'.'.repeat(30 - filled)}] ${String(Math.round(share * 100)).padStart(3)}% ${size}${finished ? '\n' : '\x1b[K'}`);
    }
    phase = p.phase;
  };
}
