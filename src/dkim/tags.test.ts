import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseTagList, stripFws } from './tags.js';

/**
 * The oracle: RFC 6376 §3.2's grammar read one character at a time, with
 * nothing clever in it. Returns each tag's [name, value, valueStart,
 * valueEnd], or null for a list the grammar refuses.
 */
function referenceTags(s: string): [string, string, number, number][] | null {
  const wsp = (i: number): boolean => s[i] === ' ' || s[i] === '\t';
  const fws = (i: number): number => {
    for (;;) {
      if (wsp(i)) i++;
      else if (s[i] === '\r' && s[i + 1] === '\n' && wsp(i + 2)) i += 3;
      else return i;
    }
  };
  const valChar = (c: number): boolean => (c >= 0x21 && c <= 0x7e && c !== 0x3b) || c >= 0x80;
  const out: [string, string, number, number][] = [];
  let i = fws(0);
  if (i === s.length) return out;
  for (;;) {
    const nameStart = i;
    if (!/[A-Za-z]/.test(s[i] ?? '')) return null;
    while (/[A-Za-z0-9_]/.test(s[i] ?? '')) i++;
    const name = s.slice(nameStart, i);
    i = fws(i);
    if (s[i] !== '=') return null;
    const valueStart = ++i;
    i = fws(i);
    let value = '';
    let pending = '';
    while (i < s.length && s[i] !== ';') {
      if (valChar(s.charCodeAt(i))) {
        value += pending + s[i++];
        pending = '';
        continue;
      }
      const after = fws(i);
      if (after === i) return null;
      pending += s.slice(i, after);
      i = after;
    }
    if (out.some(([n]) => n === name)) return null;
    out.push([name, value, valueStart, i]);
    if (i === s.length) return out;
    i = fws(i + 1);
    if (i === s.length) return out;
    // A doubled final ";" has always been taken as the optional trailing one (records in the wild end so).
    if (s[i] === ';' && fws(i + 1) === s.length) return out;
  }
}

describe('tag-list parsing (RFC 6376 §3.2)', () => {
  it('reads tags with FWS around names, = and ;, and a trailing ;', () => {
    const r = parseTagList(' v = 1 ;\r\n\ta=rsa-sha256;  h=from :\r\n to ; ');
    assert.ok(r.ok);
    assert.deepEqual([...r.tags.values()].map((t) => [t.name, t.value]), [
      ['v', '1'],
      ['a', 'rsa-sha256'],
      ['h', 'from :\r\n to'],
    ]);
    assert.equal(stripFws(r.tags.get('h')!.value), 'from:to');
  });

  it('accepts an empty value and an empty list', () => {
    const r = parseTagList('p=; t=y');
    assert.ok(r.ok);
    assert.equal(r.tags.get('p')!.value, '');
    assert.ok(parseTagList('').ok);
  });

  it('says which tag is wrong and how', () => {
    const cases: [string, string | null, RegExp][] = [
      ['v=1; v=1', 'v', /more than once/],
      ['v=1; a', 'a', /"=" expected after tag "a"/],
      ['v=1; 9x=1', null, /tag name expected/],
      ['v=1;; a=1', null, /empty tag/],
      ['b=ab\x01cd', 'b', /invalid character 0x01 in value of "b"/],
      ['b=ab\r\ncd', 'b', /invalid character 0x0d/],
    ];
    for (const [input, tag, message] of cases) {
      const r = parseTagList(input);
      assert.equal(r.ok, false, input);
      if (!r.ok) {
        assert.equal(r.tag, tag, input);
        assert.match(r.message, message, input);
      }
    }
  });

  it('agrees with a character-by-character reading of the grammar on random lists', () => {
    const piece = fc.oneof(
      fc.constantFrom('v', 'a', 'b', 'bh', 'h', '=', ';', ' ', '\t', '\r\n ', '\r\n', '\r', '\n', ':', 'rsa-sha256', 'AbC+/09==', 'x_1', '9'),
      fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)),
    );
    // Mostly well-formed lists (each tag FWS-wrapped, values with folded FWS and 8-bit octets), some with a stray piece spliced in.
    const fwsPiece = fc.constantFrom('', ' ', '\t', '\r\n ', ' \r\n\t ');
    const valuePiece = fc.oneof(fc.constantFrom('1', 'rsa-sha256', 'AbC+/09==', 'from:to', '\xe9', '\x80'), fwsPiece);
    const spec = fc.tuple(fwsPiece, fc.constantFrom('v', 'a', 'b', 'bh', 'h', 'x_1', 'Q9'), fwsPiece, fc.array(valuePiece, { maxLength: 6 }), fwsPiece).map(([a, n, b, v, c]) => `${a}${n}${b}=${v.join('')}${c}`);
    const list = fc.tuple(fc.array(spec, { maxLength: 6 }), fc.boolean()).map(([specs, trailing]) => specs.join(';') + (trailing && specs.length > 0 ? ';' : ''));
    const spliced = fc.tuple(list, piece, fc.nat()).map(([l, p, at]) => l.slice(0, at % (l.length + 1)) + p + l.slice(at % (l.length + 1)));
    fc.assert(
      fc.property(fc.oneof(list, spliced, fc.array(piece, { maxLength: 60 }).map((a) => a.join(''))), (s) => {
        const want = referenceTags(s);
        const got = parseTagList(s);
        assert.equal(got.ok, want !== null, JSON.stringify(s));
        if (got.ok) assert.deepEqual([...got.tags.values()].map((t) => [t.name, t.value, t.valueStart, t.valueEnd]), want, JSON.stringify(s));
      }),
      { numRuns: 20_000 },
    );
  });
});
