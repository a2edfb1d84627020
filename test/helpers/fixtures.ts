import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parsePrivateKey, type KeyAnswer, type SigningKey } from '../../src/dkim/index.js';

/** The repository root (this file runs from dist/test/helpers/). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export function fixturePath(...parts: string[]): string {
  return `${ROOT}test/fixtures/${parts.join('/')}`;
}

export interface Vector {
  /** TXT records by DNS name. */
  readonly records: Map<string, string[]>;
  readonly message: Buffer;
}

/** Reads a vector file: `name TXT` lines, a blank line, then the raw message. */
export function readVector(path: string): Vector {
  const raw = readFileSync(path);
  const sep = raw.indexOf('\n\n');
  const records = new Map<string, string[]>();
  for (const line of raw.subarray(0, sep).toString('latin1').split('\n')) {
    const space = line.indexOf(' ');
    const name = line.slice(0, space);
    records.set(name, [...(records.get(name) ?? []), line.slice(space + 1)]);
  }
  return { records, message: raw.subarray(sep + 2) };
}

/** A key lookup over a zone map, as the engine's callers do with real DNS. */
export function zoneLookup(zone: ReadonlyMap<string, readonly string[]>): (name: string) => Promise<KeyAnswer> {
  return async (name) => {
    const records = zone.get(name);
    return records === undefined ? { kind: 'nxdomain' } : { kind: 'found', records };
  };
}

export function loadKey(path: string): SigningKey {
  const r = parsePrivateKey(readFileSync(path));
  if (!r.ok) throw new Error(`${path}: ${r.message}`);
  return r.key;
}
