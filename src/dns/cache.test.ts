import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KeyAnswer } from '../dkim/index.js';
import { cachedLookup } from './cache.js';

function fake(answers: Record<string, KeyAnswer>) {
  const calls: string[] = [];
  const lookup = async (name: string): Promise<KeyAnswer> => {
    calls.push(name);
    return answers[name] ?? { kind: 'nxdomain' };
  };
  return { calls, lookup };
}

describe('DNS answer cache', () => {
  it('keeps answers for the TTL and missing records for the negative TTL', async () => {
    let now = 0;
    const f = fake({ 'a.test': { kind: 'found', records: ['v=DKIM1; p='] } });
    const c = cachedLookup(f.lookup, { ttlSeconds: 60, negativeTtlSeconds: 10, maxEntries: 10, now: () => now });
    await c('a.test');
    await c('A.test');
    await c('b.test');
    await c('b.test');
    assert.deepEqual(f.calls, ['a.test', 'b.test']);
    now = 11_000;
    await c('a.test');
    await c('b.test');
    assert.deepEqual(f.calls, ['a.test', 'b.test', 'b.test'], 'negative entry expired, positive not');
    now = 61_000;
    await c('a.test');
    assert.equal(f.calls.length, 4);
    assert.deepEqual({ ...c.stats }, { hits: 3, misses: 4 });
  });

  it('never caches a temporary failure', async () => {
    const f = fake({ 't.test': { kind: 'temperror', reason: 'dns timeout' } });
    const c = cachedLookup(f.lookup, { ttlSeconds: 60, negativeTtlSeconds: 60, maxEntries: 10 });
    await c('t.test');
    await c('t.test');
    assert.equal(f.calls.length, 2);
  });

  it('shares one query among concurrent lookups and stays within its size', async () => {
    const f = fake({});
    const c = cachedLookup(f.lookup, { ttlSeconds: 60, negativeTtlSeconds: 60, maxEntries: 2 });
    await Promise.all([c('x.test'), c('x.test'), c('x.test')]);
    assert.equal(f.calls.length, 1);
    await c('y.test');
    await c('z.test');
    await c('x.test');
    assert.deepEqual(f.calls, ['x.test', 'y.test', 'z.test', 'x.test'], 'the oldest entry went first');
  });
});
