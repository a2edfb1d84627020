import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { relaxedHeader } from './canonicalize.js';
import { asciiLower } from './headers.js';

/** RFC 6376 §3.4.2 step by step, as the RFC reads: the oracle for the fast paths. */
function relaxedOracle(raw: string): string {
  const colon = raw.indexOf(':');
  const name = (colon === -1 ? raw : raw.slice(0, colon)).replace(/[ \t\r\n]+$/, '').replace(/[A-Z]+/g, (m) => m.toLowerCase());
  const value = (colon === -1 ? '' : raw.slice(colon + 1))
    .replace(/\r\n/g, '')
    .replace(/[ \t]+/g, ' ')
    .replace(/^ /, '')
    .replace(/ $/, '');
  return `${name}:${value}\r\n`;
}

/** Header-ish text: the characters canonicalization treats specially, plus Latin-1 octets. */
const headerText = fc
  .array(fc.constantFrom('a', 'Z', 'x', ':', ' ', ' ', '\t', '\r', '\n', '\r\n', '\r\n ', '\r\n\t', 'É', 'é', '\u00a0', '\u00ff', ';', '='), { maxLength: 40 })
  .map((parts) => parts.join(''));

describe('header canonicalization fast paths', () => {
  it('relaxed: equals the RFC step-by-step rewrite on any field', () => {
    fc.assert(
      fc.property(headerText, headerText, fc.boolean(), (name, value, crlf) => {
        const raw = `${name}:${value}${crlf ? '\r\n' : ''}`;
        assert.equal(relaxedHeader(raw), relaxedOracle(raw));
      }),
      { numRuns: 5000 },
    );
  });

  it('relaxed: the usual cases', () => {
    assert.equal(relaxedHeader('Subject: Hello  there \r\n'), 'subject:Hello there\r\n');
    assert.equal(relaxedHeader('From : Alice <a@example.com>\r\n'), 'from:Alice <a@example.com>\r\n');
    assert.equal(relaxedHeader('To:\r\n\tbob@example.net,\r\n carol@example.net\r\n'), 'to:bob@example.net, carol@example.net\r\n');
    assert.equal(relaxedHeader('X-Empty:\r\n'), 'x-empty:\r\n');
    // Latin-1 octets (an RFC 6532 header read as binary) are neither folded nor trimmed.
    assert.equal(relaxedHeader('X-NBSP:\u00a0É \r\n'), 'x-nbsp:\u00a0É\r\n');
  });

  it('asciiLower: folds A-Z only, never Latin-1 letters', () => {
    fc.assert(
      fc.property(headerText, (s) => {
        assert.equal(asciiLower(s), s.replace(/[A-Z]+/g, (m) => m.toLowerCase()));
      }),
      { numRuns: 2000 },
    );
    assert.equal(asciiLower('Content-Type'), 'content-type');
    assert.equal(asciiLower('X-Ünicode-É'), 'x-Ünicode-É');
  });
});
