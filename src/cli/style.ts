/**
 * Colour for a person at a terminal, nothing for a pipe or a file: ANSI
 * colours only when the stream is a TTY and NO_COLOR is unset (FORCE_COLOR
 * forces them, e.g. under `watch -c`).
 */
import { stripVTControlCharacters } from 'node:util';

export interface Paint {
  readonly good: (s: string) => string;
  readonly bad: (s: string) => string;
  readonly warn: (s: string) => string;
  readonly dim: (s: string) => string;
  readonly bold: (s: string) => string;
  /** A status word in the colour of its meaning (ok, pass, fail, mismatch, temperror...). */
  readonly status: (s: string) => string;
}

const GOOD = new Set(['ok', 'pass', 'valid', 'signed']);
const WARN = new Set(['testing', 'temperror', 'dns-error', 'neutral', 'policy', 'none', 'unsigned', 'tempfail', 'warning']);

export function colourWanted(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '') return false;
  if (env['FORCE_COLOR'] !== undefined && env['FORCE_COLOR'] !== '0') return true;
  return stream.isTTY === true && env['TERM'] !== 'dumb';
}

export function paint(stream: NodeJS.WriteStream = process.stdout, env: NodeJS.ProcessEnv = process.env): Paint {
  const on = colourWanted(stream, env);
  const sgr = (open: number, close: number) => (s: string): string => (on ? `\x1b[${open}m${s}\x1b[${close}m` : s);
  const good = sgr(32, 39);
  const bad = sgr(31, 39);
  const warn = sgr(33, 39);
  return {
    good,
    bad,
    warn,
    dim: sgr(2, 22),
    bold: sgr(1, 22),
    status: (s) => (GOOD.has(s) ? good(s) : WARN.has(s) ? warn(s) : bad(s)),
  };
}

/** The width a string takes on screen: ANSI colour codes take none. */
export const visibleLength = (s: string): number => stripVTControlCharacters(s).length;
