import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { scanData, useDataScanner } from './data-mode.js';

/** RFC 5321 §4.5.2 the slow way, octet by octet over the whole input: the oracle. */
function oracle(input: Buffer): { message: Buffer; rest: Buffer | undefined } {
  const out: number[] = [];
  let lineStart = true;
  for (let i = 0; i < input.length; i++) {
    const c = input[i]!;
    if (lineStart && c === 0x2e) {
      const ends = input[i + 1] === 0x0d && input[i + 2] === 0x0a && (i === 0 || (input[i - 2] === 0x0d && input[i - 1] === 0x0a));
      if (ends) return { message: Buffer.from(out), rest: input.subarray(i + 3) };
      lineStart = false;
      continue;
    }
    out.push(c);
    lineStart = c === 0x0a;
  }
  return { message: Buffer.from(out), rest: undefined };
}

/** scanData fed `chunks` as a connection would, each after what the last call kept. */
function incremental(chunks: Buffer[]): { message: Buffer; rest: Buffer | undefined; kept: Buffer } {
  const pieces: Buffer[] = [];
  let keep: Buffer = Buffer.alloc(0);
  let atStart = true;
  for (const [k, chunk] of chunks.entries()) {
    const r = scanData(Buffer.concat([keep, chunk]), atStart);
    pieces.push(...r.pieces);
    if (r.rest) return { message: Buffer.concat(pieces), rest: Buffer.concat([r.rest, ...chunks.slice(k + 1)]), kept: Buffer.alloc(0) };
    keep = r.keep;
    atStart = r.atStart;
  }
  return { message: Buffer.concat(pieces), rest: undefined, kept: keep };
}

function cut(bytes: Buffer, at: number[]): Buffer[] {
  const points = [...new Set(at.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...points, bytes.length]) {
    out.push(bytes.subarray(from, c));
    from = c;
  }
  return out;
}

// Inputs made of the octets that matter, so that terminators, stuffed lines and bare CR/LF are common.
const wire = fc.array(fc.constantFrom('.', '\r', '\n', '\r\n', '\r\n.', 'a', '\r\n.\r\n', '..'), { maxLength: 40 }).map((xs) => Buffer.from(xs.join(''), 'latin1'));

describe('DATA phase scanner', () => {
  it('agrees with the octet-by-octet oracle however the input is cut', () => {
    fc.assert(
      fc.property(wire, fc.boolean(), fc.array(fc.nat(), { maxLength: 8 }), (prefix, end, at) => {
        // With a terminator appended the message always ends; without one it may not.
        const input = end ? Buffer.concat([prefix, Buffer.from('\r\n.\r\n')]) : prefix;
        const want = oracle(input);
        const got = incremental(cut(input, at));
        if (want.rest !== undefined) {
          assert.deepEqual(got.rest, want.rest);
          assert.deepEqual(got.message, want.message);
        } else {
          assert.equal(got.rest, undefined);
          assert.ok(want.message.subarray(0, got.message.length).equals(got.message), 'what was taken is a prefix of the message');
          assert.ok(got.kept.length <= 4, `at most 4 octets wait, not ${got.kept.length}`);
        }
      }),
      { numRuns: 20_000 },
    );
  });

  it('ends the message at CRLF "." CRLF and unstuffs every leading dot', () => {
    const r = incremental([Buffer.from('..a\r\n.b\r\n...\r\n\r\n.\r\nMAIL')]);
    assert.equal(r.message.toString('latin1'), '.a\r\nb\r\n..\r\n\r\n');
    assert.equal(r.rest?.toString('latin1'), 'MAIL');
  });

  it('ends an empty message at a first line of "."', () => {
    assert.equal(incremental([Buffer.from('.'), Buffer.from('\r'), Buffer.from('\nQUIT')]).rest?.toString('latin1'), 'QUIT');
  });

  it('finds a terminator cut after its CR', () => {
    const r = incremental([Buffer.from('body\r'), Buffer.from('\n.\r\nNEXT')]);
    assert.equal(r.message.toString('latin1'), 'body\r\n');
    assert.equal(r.rest?.toString('latin1'), 'NEXT');
  });

  it('does not end at "." after a bare LF', () => {
    const r = incremental([Buffer.from('a\n.\r\nb\r\n.\r\n')]);
    assert.equal(r.message.toString('latin1'), 'a\n\r\nb\r\n');
    assert.equal(r.rest?.length, 0);
  });

  it('leaves a parser of another shape as it was', () => {
    const own = (): void => {};
    const parser = { _feedDataStream: own, _lastBytes: false };
    assert.equal(useDataScanner(parser), false);
    assert.equal(parser._feedDataStream, own);
  });
});
