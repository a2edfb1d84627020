/**
 * Key-record lookups over real DNS, mapped to the engine's KeyAnswer:
 * NXDOMAIN/NODATA are permanent, a timeout or a failing server is temporary
 * (RFC 6376 §6.1.2; DKIM-PITFALLS 23). Every lookup is bounded in time.
 */
import { Resolver } from 'node:dns/promises';
import type { KeyAnswer } from '../dkim/index.js';

export interface DnsOptions {
  /** `host` or `host:port` (IPv6 as `[addr]:port`); empty means the system's resolvers. */
  readonly servers?: readonly string[];
  readonly timeoutMs?: number;
}

export type KeyLookup = (name: string) => Promise<KeyAnswer>;

const PERMANENT = new Set(['ENOTFOUND', 'ENODATA']);

export function createKeyLookup(options: DnsOptions = {}): KeyLookup {
  const timeoutMs = options.timeoutMs ?? 5000;
  // c-ares retries on its own; one try with the whole budget keeps the bound simple.
  const resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
  if (options.servers && options.servers.length > 0) resolver.setServers([...options.servers]);

  return async (name) => {
    let timer: NodeJS.Timeout | undefined;
    // A guard in case the resolver itself overruns (it has been seen to retry over TCP).
    const guard = new Promise<KeyAnswer>((resolve) => {
      timer = setTimeout(() => resolve({ kind: 'temperror', reason: 'dns timeout', detail: `no answer for ${name} within ${timeoutMs} ms` }), timeoutMs + 250);
    });
    const query = resolver.resolveTxt(name).then(
      (records): KeyAnswer => ({ kind: 'found', records: records.map((strings) => strings.join('')) }),
      (err: NodeJS.ErrnoException): KeyAnswer => {
        const code = err.code ?? 'EUNKNOWN';
        if (PERMANENT.has(code)) return { kind: 'nxdomain' };
        if (code === 'ETIMEOUT') return { kind: 'temperror', reason: 'dns timeout', detail: `no answer for ${name} within ${timeoutMs} ms` };
        return { kind: 'temperror', reason: 'dns error', detail: `${code} for ${name}` };
      },
    );
    try {
      return await Promise.race([query, guard]);
    } finally {
      clearTimeout(timer);
    }
  };
}
