import { visibleLength } from './style.js';

/**
 * Aligned columns for terminal output: left-aligned, or right-aligned where
 * `align` says 'r' (numbers). Widths ignore colour codes.
 */
export function table(rows: readonly (readonly string[])[], align: readonly ('l' | 'r')[] = []): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, k) => (widths[k] = Math.max(widths[k] ?? 0, visibleLength(c))));
  const pad = (c: string, k: number, last: boolean): string => {
    const fill = ' '.repeat(widths[k]! - visibleLength(c));
    if (align[k] === 'r') return fill + c;
    return last ? c : c + fill;
  };
  return rows.map((r) => r.map((c, k) => pad(c, k, k === r.length - 1)).join('  ')).join('\n') + '\n';
}
