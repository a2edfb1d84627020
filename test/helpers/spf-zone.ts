/** An SPF test zone in memory: the SpfDns interface over a map of names to records (for unit tests, where DNS is not the subject). */
import type { SpfDns } from '../../src/spf/evaluate.js';
import type { WireAnswer } from '../../src/dns/wire.js';

export interface Zone {
  readonly txt?: Record<string, readonly string[]>;
  readonly a?: Record<string, readonly string[]>;
  readonly aaaa?: Record<string, readonly string[]>;
  readonly mx?: Record<string, readonly (readonly [number, string])[]>;
  readonly ptr?: Record<string, readonly string[]>;
  /** Names whose every lookup times out. */
  readonly timeout?: readonly string[];
}

export function zoneDns(zone: Zone, asked: string[] = []): SpfDns {
  const names = new Set([...Object.values(zone).flatMap((table) => (Array.isArray(table) ? [] : Object.keys(table as object)))].map((n) => n.toLowerCase()));
  const answer = <T>(type: string, table: Record<string, readonly T[]> | undefined, name: string): Promise<WireAnswer<T>> => {
    asked.push(`${type} ${name}`);
    const key = name.toLowerCase();
    if (zone.timeout?.includes(key)) return Promise.resolve({ kind: 'temperror', reason: 'dns timeout', detail: `timeout for ${name}` });
    const records = table ? Object.entries(table).find(([k]) => k.toLowerCase() === key)?.[1] : undefined;
    if (records && records.length > 0) return Promise.resolve({ kind: 'found', records, ttl: 60 });
    return Promise.resolve(names.has(key) ? { kind: 'nodata' } : { kind: 'nxdomain' });
  };
  return {
    txt: (n) => answer('TXT', zone.txt && Object.fromEntries(Object.entries(zone.txt).map(([k, v]) => [k, v.map((s) => [Buffer.from(s, 'latin1')])])), n),
    a: (n) => answer('A', zone.a, n),
    aaaa: (n) => answer('AAAA', zone.aaaa, n),
    mx: (n) => answer('MX', zone.mx && Object.fromEntries(Object.entries(zone.mx).map(([k, v]) => [k, v.map(([preference, exchange]) => ({ preference, exchange }))])), n),
    ptr: (n) => answer('PTR', zone.ptr, n),
  };
}
