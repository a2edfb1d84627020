/** A process's memory as the kernel counts it (Linux /proc): VmRSS now, VmHWM the peak resident set so far. */
import { readFileSync } from 'node:fs';

export function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}
