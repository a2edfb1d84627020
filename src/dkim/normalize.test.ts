import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LineEndNormalizer, normalizeLineEnds } from './normalize.js';

describe('line-end normalization (DKIM-PITFALLS 13)', () => {
  it('turns bare LF into CRLF and leaves CRLF and lone CR alone', () => {
    assert.equal(normalizeLineEnds(Buffer.from('a\nb\r\nc\rd\n\n')).toString(), 'a\r\nb\r\nc\rd\r\n\r\n');
  });

  it('returns the same buffer when nothing needs fixing', () => {
    const clean = Buffer.from('a\r\nb\r\n');
    assert.equal(normalizeLineEnds(clean), clean);
  });

  it('gives the same output for any chunking, a CR at a chunk end included', () => {
    const text = fc.array(fc.constantFrom('a', '\r', '\n', '\r\n', ' '), { maxLength: 30 }).map((p) => p.join(''));
    fc.assert(
      fc.property(text, fc.array(fc.nat(), { maxLength: 6 }), (s, cuts) => {
        const whole = normalizeLineEnds(Buffer.from(s)).toString();
        const n = new LineEndNormalizer();
        let out = '';
        let at = 0;
        for (const cut of [...new Set(cuts.map((c) => c % (s.length + 1)))].sort((a, b) => a - b)) {
          out += n.push(Buffer.from(s.slice(at, cut))).toString();
          at = cut;
        }
        out += n.push(Buffer.from(s.slice(at))).toString();
        assert.equal(out, whole);
        assert.equal(whole, s.replace(/\r?\n/g, '\r\n'));
      }),
      { numRuns: 2000 },
    );
  });
});
