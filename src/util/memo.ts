/**
 * A function's results kept by their string argument, for parsers that see
 * the same few inputs again and again (DNS records): key records, SPF and
 * DMARC records, organizational domains. Bounded: the oldest entry goes
 * first. What it keeps must not be changed by the callers.
 */
export function boundedMemo<T>(fn: (key: string) => T, maxEntries: number): (key: string) => T {
  const kept = new Map<string, T>();
  return (key) => {
    if (kept.has(key)) return kept.get(key) as T;
    const value = fn(key);
    if (kept.size >= maxEntries) kept.delete(kept.keys().next().value!);
    kept.set(key, value);
    return value;
  };
}
