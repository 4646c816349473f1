/**
 * Which generations to keep: by count and age (as the full backups do), and
 * optionally the newest of each of the last N days and M weeks that have
 * one. The newest generation is always kept: an old backup beats none.
 */
import { InvalidArgumentError } from '../../engine/errors.ts';

const DAY_MS = 86_400_000;

export interface RetentionSettings {
  /** The newest this many generations are kept (subject to maxAgeDays). Default 30. */
  keepLast?: number;
  /** Generations kept by keepLast are dropped once older than this many days (default: no limit). */
  maxAgeDays?: number;
  /** Also keep the newest generation of each of the last N UTC days that have one (default 0). */
  daily?: number;
  /** Also keep the newest generation of each of the last M ISO weeks (UTC, Monday first) that have one (default 0). */
  weekly?: number;
}

export interface Dated {
  seq: number;
  createdAtMs: number;
}

export function validateRetention(r: RetentionSettings): Required<RetentionSettings> {
  const out = { keepLast: r.keepLast ?? 30, maxAgeDays: r.maxAgeDays ?? Infinity, daily: r.daily ?? 0, weekly: r.weekly ?? 0 };
  for (const [name, v] of Object.entries(out)) {
    if (!(v === Infinity && name === 'maxAgeDays') && (!Number.isInteger(v) || v < 0)) {
      throw new InvalidArgumentError(`retention ${name} must be a non-negative integer`);
    }
  }
  return out;
}

/** The sequence numbers to keep among `generations`, judged at `now`. */
export function planRetention(generations: Dated[], settings: RetentionSettings, now: Date): Set<number> {
  const r = validateRetention(settings);
  const newestFirst = [...generations].sort((a, b) => b.seq - a.seq);
  const keep = new Set<number>();
  if (newestFirst.length) keep.add(newestFirst[0]!.seq);
  newestFirst.forEach((g, i) => {
    if (i < r.keepLast && now.getTime() - g.createdAtMs <= r.maxAgeDays * DAY_MS) keep.add(g.seq);
  });
  for (const [count, bucket] of [[r.daily, dayOf], [r.weekly, isoWeekOf]] as const) {
    const seen = new Set<string>();
    for (const g of newestFirst) {
      if (seen.size >= count) break;
      const b = bucket(g.createdAtMs);
      if (seen.has(b)) continue;
      seen.add(b);
      keep.add(g.seq); // the newest of its day (or week): we walk newest first
    }
  }
  return keep;
}

function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** ISO 8601 week, e.g. 2026-W09, in UTC. */
function isoWeekOf(ms: number): string {
  const d = new Date(Math.floor(ms / DAY_MS) * DAY_MS);
  const weekday = (d.getUTCDay() + 6) % 7; // Monday 0
  const thursday = new Date(d.getTime() + (3 - weekday) * DAY_MS);
  const yearStart = Date.UTC(thursday.getUTCFullYear(), 0, 1);
  const week = 1 + Math.floor((thursday.getTime() - yearStart) / (7 * DAY_MS));
  return `${thursday.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}
