import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createBodyHasher, hashBody, type HashAlgorithm } from './bodyhash.js';
import type { Canon } from './canonicalize.js';

/**
 * An independent oracle: RFC 6376 §3.4.3/§3.4.4 written as whole-string
 * rewrites, the way the RFC text reads (and dkimpy implements it).
 */
function oracle(body: Buffer, canon: Canon): Buffer {
  let s = body.toString('latin1');
  if (canon === 'relaxed') {
    s = s.replace(/[ \t]+\r\n/g, '\r\n').replace(/[ \t]+$/, '').replace(/[ \t]+/g, ' ');
    s = s.replace(/(\r\n)+$/, '');
    if (s !== '') s += '\r\n';
  } else {
    s = s.replace(/(\r\n)+$/, '') + '\r\n';
  }
  return Buffer.from(s, 'latin1');
}

const digest = (b: Buffer, algorithm: HashAlgorithm = 'sha256'): string => createHash(algorithm).update(b).digest('base64');

function chunked(body: Buffer, cuts: number[], canon: Canon, limit?: number): string {
  const h = createBodyHasher(canon, 'sha256', limit);
  let at = 0;
  for (const cut of [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b)) {
    h.update(body.subarray(at, cut));
    at = cut;
  }
  h.update(body.subarray(at));
  return h.digest().hash.toString('base64');
}

// Pieces that exercise every rule: WSP runs, line ends split across chunks,
// lone CR/LF, trailing empty and whitespace-only lines, 8-bit octets.
const piece = fc.constantFrom('a', 'bc', ' ', '  ', '\t', ' \t ', '\r', '\n', '\r\n', '\r\n\r\n', ' \r\n', '.', '\xe9', 'x y');
const bodyArb = fc.array(piece, { maxLength: 40 }).map((p) => Buffer.from(p.join(''), 'latin1'));

describe('body canonicalization', () => {
  it('gives the known empty-body hashes (DKIM-PITFALLS 1, erratum 1376)', () => {
    const empty = Buffer.alloc(0);
    assert.equal(hashBody(empty, 'simple', 'sha256').hash.toString('base64'), 'frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=');
    assert.equal(hashBody(empty, 'relaxed', 'sha256').hash.toString('base64'), '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
    assert.equal(hashBody(empty, 'simple', 'sha1').hash.toString('base64'), 'uoq1oCgLlTqpdDX/iUbLy7J1Wic=');
    assert.equal(hashBody(empty, 'relaxed', 'sha1').hash.toString('base64'), '2jmj7l5rSw0yVb/vlWAYkK/YBwk=');
  });

  it('treats a body of only empty lines as empty', () => {
    const blank = Buffer.from('\r\n\r\n\r\n');
    assert.equal(hashBody(blank, 'simple', 'sha256').hash.toString('base64'), 'frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=');
    assert.equal(hashBody(blank, 'relaxed', 'sha256').hash.toString('base64'), '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
  });

  it('hashes the RFC 6376/8463 example body as the RFC does', () => {
    const body = Buffer.from('Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n');
    assert.equal(hashBody(body, 'relaxed', 'sha256').hash.toString('base64'), '2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=');
  });

  it('strips trailing WSP before trailing empty lines under relaxed (DKIM-PITFALLS 2)', () => {
    const body = Buffer.from('text\r\n \r\n\t\r\n  \t \r\n');
    assert.equal(hashBody(body, 'relaxed', 'sha256').hash.toString('base64'), digest(Buffer.from('text\r\n')));
    // Simple keeps whitespace-only lines: they are not empty.
    assert.equal(hashBody(body, 'simple', 'sha256').hash.toString('base64'), digest(body));
  });

  it('adds the missing final CRLF', () => {
    assert.equal(hashBody(Buffer.from('abc'), 'simple', 'sha256').hash.toString('base64'), digest(Buffer.from('abc\r\n')));
    assert.equal(hashBody(Buffer.from('abc  '), 'relaxed', 'sha256').hash.toString('base64'), digest(Buffer.from('abc\r\n')));
  });

  it('keeps a bare CR as an ordinary octet (DKIM-PITFALLS 14)', () => {
    const body = Buffer.from('a\rb \r c\r\n');
    assert.equal(hashBody(body, 'relaxed', 'sha256').hash.toString('base64'), digest(Buffer.from('a\rb \r c\r\n')));
    assert.equal(hashBody(body, 'simple', 'sha256').hash.toString('base64'), digest(body));
  });

  it('handles lines far over 998 octets (DKIM-PITFALLS 17)', () => {
    const line = 'x'.repeat(5000) + ' \t '.repeat(300) + 'y'.repeat(5000);
    const body = Buffer.from(`${line}\r\n${line}  \r\n`);
    assert.equal(hashBody(body, 'relaxed', 'sha256').hash.toString('base64'), digest(oracle(body, 'relaxed')));
  });

  it('counts the canonical length and truncates the hash at l= after canonicalizing (DKIM-PITFALLS 12)', () => {
    const body = Buffer.from('a  b\r\nc\r\n\r\n');
    const r = hashBody(body, 'relaxed', 'sha256', 4);
    assert.equal(r.canonicalLength, 'a b\r\nc\r\n'.length);
    assert.equal(r.hash.toString('base64'), digest(Buffer.from('a b\r')));
  });

  for (const canon of ['simple', 'relaxed'] as const) {
    it(`${canon}: matches the oracle for any body and any chunking`, () => {
      fc.assert(
        fc.property(bodyArb, fc.array(fc.nat(), { maxLength: 8 }), (body, cuts) => {
          assert.equal(chunked(body, cuts, canon), digest(oracle(body, canon)));
        }),
        { numRuns: 3000 },
      );
    });

    it(`${canon}: byte-by-byte feeding gives the same hash as one chunk`, () => {
      fc.assert(
        fc.property(bodyArb, (body) => {
          const h = createBodyHasher(canon, 'sha256');
          for (let k = 0; k < body.length; k++) h.update(body.subarray(k, k + 1));
          assert.equal(h.digest().hash.toString('base64'), hashBody(body, canon, 'sha256').hash.toString('base64'));
        }),
        { numRuns: 1000 },
      );
    });

    it(`${canon}: l= truncation matches the oracle for any chunking`, () => {
      fc.assert(
        fc.property(bodyArb, fc.array(fc.nat(), { maxLength: 6 }), fc.nat(60), (body, cuts, l) => {
          const canonical = oracle(body, canon);
          assert.equal(chunked(body, cuts, canon, l), digest(canonical.subarray(0, l)));
        }),
        { numRuns: 1000 },
      );
    });
  }
});

const wasmDisabled = process.env['DKIM_PROXY_NO_WASM'] === '1';

describe('relaxed body: the SIMD scanner', { skip: wasmDisabled && 'disabled by DKIM_PROXY_NO_WASM=1' }, () => {
  // Larger bodies, so regions reach the WebAssembly path (>= 256 octets) and
  // cross its 16-octet blocks at every offset.
  const bigBody = fc
    .array(fc.constantFrom('abcdefghijklmnop', 'word ', 'x', ' ', '  ', '\t', ' \t', '\r\n', ' \r\n', '\r', '\n', '\xff', 'QUJDREVGR0hJSktMTU5PUA=='), { minLength: 50, maxLength: 600 })
    .map((p) => Buffer.from(p.join(''), 'latin1'));

  it('is available on this platform (so the tests below exercise it)', async () => {
    const { relaxedScanner } = await import('./wasm/relaxed.js');
    assert.notEqual(relaxedScanner, null);
  });

  it('canonicalizes a clean region exactly as the oracle does', async () => {
    const { relaxedScanner } = await import('./wasm/relaxed.js');
    fc.assert(
      fc.property(bigBody, (body) => {
        // A clean region: content at both ends, nothing pending before it.
        const region = Buffer.concat([Buffer.from('a'), body, Buffer.from('z')]);
        const got = Buffer.from(relaxedScanner!.relax(region, 0, region.length));
        const want = oracle(region, 'relaxed').subarray(0, -2); // the oracle adds the final CRLF
        assert.equal(got.toString('latin1'), want.toString('latin1'));
      }),
      { numRuns: 500 },
    );
  });

  it('gives the oracle\'s hash for large bodies in any chunking', () => {
    fc.assert(
      fc.property(bigBody, fc.array(fc.nat(), { maxLength: 6 }), (body, cuts) => {
        assert.equal(chunked(body, cuts, 'relaxed'), digest(oracle(body, 'relaxed')));
      }),
      { numRuns: 500 },
    );
  });

  it('handles regions larger than one scanner slice', () => {
    const line = 'Some words,  then\ttabs and trailing space \r\n';
    const body = Buffer.from(line.repeat(Math.ceil((600 * 1024) / line.length)), 'latin1');
    assert.equal(hashBody(body, 'relaxed', 'sha256').hash.toString('base64'), digest(oracle(body, 'relaxed')));
  });
});
