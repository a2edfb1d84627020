/**
 * A bounded cache in front of a KeyLookup: answers are kept for the positive
 * TTL, missing records for the negative TTL, temporary failures not at all.
 * Concurrent lookups of one name share a query.
 */
import type { KeyAnswer } from '../dkim/index.js';
import type { KeyLookup } from './resolver.js';

export interface CacheOptions {
  readonly ttlSeconds: number;
  readonly negativeTtlSeconds: number;
  readonly maxEntries: number;
  /** For tests: the clock, in ms. */
  readonly now?: () => number;
  /** Told of every hit and miss (metrics; the stats below are per cache, and a reload makes a new one). */
  readonly observe?: (event: 'hit' | 'miss') => void;
}

export interface CacheStats {
  hits: number;
  misses: number;
}

export interface CachedLookup extends KeyLookup {
  readonly stats: Readonly<CacheStats>;
}

export function cachedLookup(lookup: KeyLookup, options: CacheOptions): CachedLookup {
  const now = options.now ?? Date.now;
  const entries = new Map<string, { answer: KeyAnswer; expires: number }>();
  const inFlight = new Map<string, Promise<KeyAnswer>>();
  const stats: CacheStats = { hits: 0, misses: 0 };

  const fn = async (name: string): Promise<KeyAnswer> => {
    const key = name.toLowerCase();
    const hit = entries.get(key);
    if (hit && hit.expires > now()) {
      stats.hits++;
      options.observe?.('hit');
      return hit.answer;
    }
    if (hit) entries.delete(key);
    const pending = inFlight.get(key);
    if (pending) {
      stats.hits++;
      options.observe?.('hit');
      return pending;
    }
    stats.misses++;
    options.observe?.('miss');
    const query = lookup(name).then((answer) => {
      inFlight.delete(key);
      const ttl = answer.kind === 'found' ? options.ttlSeconds : answer.kind === 'nxdomain' ? options.negativeTtlSeconds : 0;
      if (ttl > 0) {
        if (entries.size >= options.maxEntries) entries.delete(entries.keys().next().value!);
        entries.set(key, { answer, expires: now() + ttl * 1000 });
      }
      return answer;
    });
    inFlight.set(key, query);
    return query;
  };
  return Object.assign(fn, { stats });
}
