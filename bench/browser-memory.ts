import fs from 'node:fs';

/** Resident memory, in MB, of every Chromium process this benchmark started (page, worker, storage and browser processes alike). */
export function browserRssMB(): number {
  const procs = new Map<number, { ppid: number; chromium: boolean; kb: number }>();
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
      procs.set(Number(pid), { ppid: field('PPid'), chromium: /Name:\s+chrom/.test(status), kb: field('VmRSS') });
    } catch {
      // the process ended while we looked
    }
  }
  const ours = (pid: number): boolean => pid === process.pid || (procs.has(pid) && pid > 1 && ours(procs.get(pid)!.ppid));
  let kb = 0;
  for (const [pid, p] of procs) if (p.chromium && ours(pid)) kb += p.kb;
  return kb / 1024;
}
