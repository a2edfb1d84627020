import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTagList, stripFws } from './tags.js';

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
});
