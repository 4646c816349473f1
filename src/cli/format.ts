/** Words and sizes as a person reads them: "1 page", "2 pages", "8.0 KB", "312 bytes". */

/** `count` and the noun, plural unless count is 1. */
export function plural(count: number, noun: string, nouns = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : nouns}`;
}

const UNITS = ['KB', 'MB', 'GB', 'TB'];

/** A byte count in the largest unit (powers of 1024) that keeps it at 1 or more. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return plural(bytes, 'byte');
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${UNITS[unit]}`;
}
