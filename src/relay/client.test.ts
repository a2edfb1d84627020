import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DotStuffer, parseReply } from './client.js';

/** The oracle: RFC 5321 §4.5.2 on the whole message at once, line by line. */
function stuffWhole(message: string): string {
  const lines = message.split('\r\n');
  const stuffed = lines.map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\r\n');
  return stuffed + (message.endsWith('\r\n') || message === '' ? '.\r\n' : '\r\n.\r\n');
}

/** Splits `s` at the given cut points (any order, duplicates allowed). */
function chunks(s: string, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (s.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...at, s.length]) {
    out.push(Buffer.from(s.slice(from, c), 'latin1'));
    from = c;
  }
  return out;
}

const lineText = fc.stringMatching(/^[.a\r\n]{0,6}$/).map((s) => s.replace(/\r(?!\n)/g, '').replace(/(?<!\r)\n/g, ''));
const message = fc.array(lineText, { maxLength: 12 }).map((lines) => lines.join('\r\n'));

describe('dot-stuffing (RFC 5321 §4.5.2)', () => {
  it('gives what the whole-message oracle gives, however the message is chunked', () => {
    fc.assert(
      fc.property(message, fc.array(fc.nat(), { maxLength: 8 }), fc.boolean(), (m, cuts, crlfEnd) => {
        const text = crlfEnd ? `${m}\r\n` : m;
        const stuffer = new DotStuffer();
        const out = Buffer.concat([...chunks(text, cuts).map((c) => stuffer.push(c)), stuffer.end()]).toString('latin1');
        assert.equal(out, stuffWhole(text));
      }),
      { numRuns: 2000 },
    );
  });

  it('doubles a leading dot, a dot after CRLF split across chunks, and ends with CRLF . CRLF', () => {
    const s = new DotStuffer();
    const out = Buffer.concat([s.push(Buffer.from('.a\r')), s.push(Buffer.from('\n.b\r\n')), s.end()]).toString('latin1');
    assert.equal(out, '..a\r\n..b\r\n.\r\n');
    const t = new DotStuffer();
    assert.equal(Buffer.concat([t.push(Buffer.from('no end')), t.end()]).toString(), 'no end\r\n.\r\n');
  });
});

describe('reply parsing', () => {
  it('takes the code from the last line and the enhanced code from the first that has one', () => {
    const r = parseReply(['250-mx.example.com', '250-PIPELINING', '250 SIZE 10240000']);
    assert.equal(r.code, 250);
    assert.equal(r.enhanced, undefined);
    assert.deepEqual(r.lines, ['mx.example.com', 'PIPELINING', 'SIZE 10240000']);
    const e = parseReply(['550-5.1.1 The email account that you tried to reach does not exist.', '550 5.1.1 Please try again.']);
    assert.equal(e.code, 550);
    assert.equal(e.enhanced, '5.1.1');
    assert.deepEqual(e.lines, ['The email account that you tried to reach does not exist.', 'Please try again.']);
  });

  it('reads a code alone on its line, and text that only looks like a code', () => {
    assert.deepEqual(parseReply(['354']), { code: 354, enhanced: undefined, lines: [''] });
    const r = parseReply(['250 2.0.0']);
    assert.equal(r.enhanced, '2.0.0');
    assert.deepEqual(r.lines, ['']);
    // "4.2" is not an enhanced code (three parts are needed).
    assert.equal(parseReply(['452 4.2 Too many']).enhanced, undefined);
  });
});
