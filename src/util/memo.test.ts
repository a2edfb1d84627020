import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { boundedMemo } from './memo.js';

describe('boundedMemo', () => {
  it('computes each key once, keeps null results too, and drops the oldest when full', () => {
    const calls: string[] = [];
    const f = boundedMemo((k: string) => (calls.push(k), k === 'none' ? null : k.length), 2);
    assert.equal(f('abc'), 3);
    assert.equal(f('abc'), 3);
    assert.equal(f('none'), null);
    assert.equal(f('none'), null);
    assert.deepEqual(calls, ['abc', 'none']);
    f('x'); // evicts 'abc'
    f('abc');
    assert.deepEqual(calls, ['abc', 'none', 'x', 'abc']);
  });
});
