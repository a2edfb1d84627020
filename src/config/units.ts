/** Durations and sizes as people write them in config files and flags. */

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** `"7d"`, `"12h"`, `"90m"`, `"3600"` (seconds) → seconds; null when unreadable. */
export function parseDuration(text: string): number | null {
  const m = /^\s*(\d+)\s*([smhdw]?)\s*$/i.exec(text);
  if (!m) return null;
  const seconds = Number(m[1]) * DURATION_UNITS[(m[2] || 's').toLowerCase()]!;
  return Number.isSafeInteger(seconds) && seconds > 0 ? seconds : null;
}
