/**
 * A bounded cache in front of a WireResolver, for SPF and DMARC: an answer
 * is kept for its own TTL (capped by `[dns] cache_ttl`), a missing name or
 * record for `[dns] negative_ttl`, a temporary failure not at all.
 * Concurrent lookups of one name and type share a query, so the SPF check
 * started at RCPT and the one the message's checks run later ask DNS once.
 */
import type { DnsConfig } from '../config/types.js';
import { createWireResolver, type WireAnswer, type WireResolver } from './wire.js';

export interface WireCacheOptions {
  readonly maxTtlSeconds: number;
  readonly negativeTtlSeconds: number;
  readonly maxEntries: number;
  /** For tests: the clock, in ms. */
  readonly now?: () => number;
  readonly observe?: (event: 'hit' | 'miss') => void;
}

type Method = keyof WireResolver;

export function cachedWire(resolver: WireResolver, options: WireCacheOptions): WireResolver {
  const now = options.now ?? Date.now;
  const entries = new Map<string, { answer: WireAnswer<unknown>; expires: number }>();
  const inFlight = new Map<string, Promise<WireAnswer<unknown>>>();

  const ttlOf = (answer: WireAnswer<unknown>): number => {
    switch (answer.kind) {
      case 'found':
        return Math.min(answer.ttl, options.maxTtlSeconds);
      case 'nxdomain':
      case 'nodata':
        return options.negativeTtlSeconds;
      case 'temperror':
      case 'invalid-name':
        return 0;
    }
  };

  function cached<T>(method: Method): (name: string) => Promise<WireAnswer<T>> {
    const ask = resolver[method] as (name: string) => Promise<WireAnswer<T>>;
    return (name) => {
      const key = `${method} ${name.toLowerCase().replace(/\.$/, '')}`;
      const hit = entries.get(key);
      if (hit && hit.expires > now()) {
        options.observe?.('hit');
        // Most recently used goes last, so the oldest is the one evicted.
        entries.delete(key);
        entries.set(key, hit);
        return Promise.resolve(hit.answer as WireAnswer<T>);
      }
      if (hit) entries.delete(key);
      const pending = inFlight.get(key);
      if (pending) {
        options.observe?.('hit');
        return pending as Promise<WireAnswer<T>>;
      }
      options.observe?.('miss');
      const query = ask(name).then(
        (answer) => {
          inFlight.delete(key);
          const ttl = ttlOf(answer);
          if (ttl > 0) {
            if (entries.size >= options.maxEntries) entries.delete(entries.keys().next().value!);
            entries.set(key, { answer, expires: now() + ttl * 1000 });
          }
          return answer;
        },
        (err: unknown) => {
          inFlight.delete(key);
          throw err;
        },
      );
      inFlight.set(key, query);
      return query;
    };
  }

  return { txt: cached('txt'), a: cached('a'), aaaa: cached('aaaa'), mx: cached('mx'), ptr: cached('ptr') };
}

/** The resolver `in` uses for SPF and DMARC, as `[dns]` says. */
export function wireFor(dns: DnsConfig, observe?: (event: 'hit' | 'miss') => void): WireResolver {
  return cachedWire(createWireResolver({ servers: dns.servers, timeoutMs: dns.timeoutMs }), {
    maxTtlSeconds: dns.cacheTtlSeconds,
    negativeTtlSeconds: dns.negativeTtlSeconds,
    maxEntries: dns.cacheEntries,
    ...(observe ? { observe } : {}),
  });
}

/** A resolver that asks whichever one `current` gives now: a reload swaps it without touching the listeners. */
export function delegatingWire(current: () => WireResolver): WireResolver {
  return { txt: (n) => current().txt(n), a: (n) => current().a(n), aaaa: (n) => current().aaaa(n), mx: (n) => current().mx(n), ptr: (n) => current().ptr(n) };
}
