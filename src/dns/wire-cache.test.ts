import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cachedWire } from './wire-cache.js';
import type { WireAnswer, WireResolver } from './wire.js';

/** A resolver that answers from a table and counts what it was asked. */
function counting(answers: Record<string, WireAnswer<string>>) {
  const asked: string[] = [];
  const answer = (type: string) => (name: string): Promise<WireAnswer<string>> => {
    asked.push(`${type} ${name}`);
    return Promise.resolve(answers[name] ?? { kind: 'nxdomain' });
  };
  const resolver: WireResolver = { txt: answer('txt') as unknown as WireResolver['txt'], a: answer('a'), aaaa: answer('aaaa'), mx: answer('mx') as unknown as WireResolver['mx'], ptr: answer('ptr') };
  return { resolver, asked };
}

describe('the SPF/DMARC DNS cache', () => {
  it('keeps an answer for its TTL, capped by cache_ttl; a missing name for negative_ttl; a temporary failure not at all', async () => {
    let clock = 0;
    const { resolver, asked } = counting({
      'short.example': { kind: 'found', records: ['192.0.2.1'], ttl: 10 },
      'long.example': { kind: 'found', records: ['192.0.2.2'], ttl: 86_400 },
      'down.example': { kind: 'temperror', reason: 'dns timeout', detail: 'x' },
    });
    const c = cachedWire(resolver, { maxTtlSeconds: 60, negativeTtlSeconds: 5, maxEntries: 100, now: () => clock });
    for (const n of ['short.example', 'long.example', 'gone.example', 'down.example']) await c.a(n);
    clock = 4_000;
    for (const n of ['SHORT.example.', 'long.example', 'gone.example', 'down.example']) await c.a(n);
    assert.deepEqual(asked, ['a short.example', 'a long.example', 'a gone.example', 'a down.example', 'a down.example']);
    clock = 11_000;
    await c.a('short.example');
    await c.a('gone.example');
    await c.a('long.example');
    assert.deepEqual(asked.slice(5), ['a short.example', 'a gone.example']);
    clock = 61_000;
    await c.a('long.example');
    assert.deepEqual(asked.slice(7), ['a long.example']);
    // Types are cached apart.
    await c.aaaa('long.example');
    assert.equal(asked.at(-1), 'aaaa long.example');
  });

  it('concurrent lookups of one name share a query; the cache holds at most maxEntries', async () => {
    const { resolver, asked } = counting({});
    const c = cachedWire(resolver, { maxTtlSeconds: 60, negativeTtlSeconds: 60, maxEntries: 2, now: () => 0 });
    await Promise.all([c.txt('a.example'), c.txt('a.example'), c.txt('a.example')]);
    assert.equal(asked.length, 1);
    await c.txt('b.example');
    await c.txt('c.example');
    await c.txt('a.example');
    assert.deepEqual(asked, ['txt a.example', 'txt b.example', 'txt c.example', 'txt a.example']);
  });
});
