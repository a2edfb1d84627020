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

describe('line-end normalization of large chunks (the SIMD path)', () => {
  it('finds a bare LF wherever it is, including at slice and block edges', () => {
    const base = Buffer.alloc(600 * 1024, 'a');
    for (let k = 0; k < base.length; k += 100) base.write('\r\n', k, 'latin1');
    for (const at of [0, 1, 15, 16, 17, 1023, 256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, base.length - 1]) {
      const b = Buffer.from(base);
      b[at] = 0x0a;
      if (at > 0 && b[at - 1] === 0x0d) b[at - 1] = 0x61;
      const out = normalizeLineEnds(b).toString('latin1');
      assert.equal(out, b.toString('latin1').replace(/\r?\n/g, '\r\n'), `bare LF at ${at}`);
    }
    assert.equal(normalizeLineEnds(base), base, 'a clean chunk comes back as the same buffer');
  });

  it('carries a CR at the end of one large chunk to an LF starting the next', () => {
    const n = new LineEndNormalizer();
    const first = Buffer.alloc(4096, 'a');
    first[first.length - 1] = 0x0d;
    const second = Buffer.concat([Buffer.from('\n'), Buffer.alloc(4096, 'b')]);
    assert.equal(n.push(first), first);
    assert.equal(n.push(second), second);
  });
});
