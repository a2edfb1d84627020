import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import * as libbase64 from 'libbase64';
import * as libqp from 'libqp';
import { Base64Encoder, Base64Rewrapper, QuotedPrintableEncoder, QuotedPrintableReencoder, type BodyEncoder } from './encoders.js';
import { LineCheck } from './lines.js';
import { SevenBitScan } from './scan.js';
import { toSevenBit } from './seven-bit.js';
import { parseHeaderBlock } from '../dkim/index.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Feeds `octets` in pieces cut at `cuts`. */
function pieces(octets: Buffer, cuts: readonly number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (octets.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    out.push(octets.subarray(from, c));
    from = c;
  }
  out.push(octets.subarray(from));
  return out;
}

function check(chunks: readonly Buffer[]): string | undefined {
  const c = new LineCheck();
  for (const chunk of chunks) c.update(chunk);
  return c.end();
}

function run(encoder: BodyEncoder, chunks: readonly Buffer[]): Buffer {
  const out: Buffer[] = [];
  for (const chunk of chunks) {
    const o = encoder.push(chunk);
    if (o) out.push(o);
  }
  const e = encoder.end();
  if (e) out.push(e);
  return Buffer.concat(out);
}

const fitFor7Bit = (octets: Buffer): boolean => check([octets]) === undefined;

describe('LineCheck', () => {
  it('finds what a 7-bit hop would change, wherever the chunks are cut', () => {
    const cases: [string, string | undefined][] = [
      ['plain\r\nlines\r\n', undefined],
      [`${'x'.repeat(998)}\r\n`, undefined],
      [`${'x'.repeat(999)}\r\n`, 'lines over 998 octets'],
      [`a\r\n${'x'.repeat(999)}`, 'lines over 998 octets'],
      ['caf\xe9\r\n', '8-bit octets'],
      ['nul\0\r\n', 'NUL octets'],
      ['bare\rcr\r\n', 'bare CR or LF'],
      ['bare\nlf\r\n', 'bare CR or LF'],
      ['\n', 'bare CR or LF'],
      ['ends in cr\r', 'bare CR or LF'],
      ['\r\r\n', 'bare CR or LF'],
    ];
    for (const [text, expected] of cases) {
      const octets = b(text);
      for (let cut = 0; cut <= octets.length; cut++) assert.equal(check([octets.subarray(0, cut), octets.subarray(cut)]), expected, `${JSON.stringify(text.slice(0, 20))} cut at ${cut}`);
    }
  });
});

describe('SevenBitScan', () => {
  const head = (cte?: string): ReturnType<typeof parseHeaderBlock> => parseHeaderBlock(`From: a@example.com\r\n${cte ? `Content-Transfer-Encoding: ${cte}\r\n` : ''}`);
  const scan = (h: ReturnType<typeof parseHeaderBlock>, chunks: readonly Buffer[]): string | undefined => {
    const s = new SevenBitScan(h);
    for (const c of chunks) s.update(c);
    return s.end();
  };

  it('says a message declared 8bit or binary, at the top or in a part, needs converting', () => {
    assert.equal(scan(head('8bit'), [b('ascii\r\n')]), 'a part declared 8bit or binary');
    assert.equal(scan(head('BINARY (comment)'), [b('ascii\r\n')]), 'a part declared 8bit or binary');
    assert.equal(scan(head('quoted-printable'), [b('ascii\r\n')]), undefined);
    const body = b('--b\r\nContent-Type: text/plain\r\ncontent-transfer-encoding:  8BIT\r\n\r\nascii\r\n--b--\r\n');
    for (let cut = 0; cut <= body.length; cut++) assert.equal(scan(head(), [body.subarray(0, cut), body.subarray(cut)]), 'a part declared 8bit or binary', `cut at ${cut}`);
    assert.equal(scan(head(), [b('--b\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n--b--\r\n')]), undefined);
  });
});

describe('SevenBitScan, SIMD and JS', () => {
  const piece = fc.oneof(
    fc.constantFrom('a', 'C', 'c', ' ', '\r\n', '\r', '\n', '\0', '\xe9', 'Content-Transfer-Encoding: 8bit\r\n', 'content-transfer-encoding: base64\r\n', 'Content-Type: text/plain\r\n'),
    fc.integer({ min: 990, max: 1010 }).map((n) => 'x'.repeat(n)),
  );
  const body = fc.array(piece, { maxLength: 40 }).map((p) => b(p.join('')));

  it('agree on whether a message needs converting, whatever the chunking', () => {
    fc.assert(
      fc.property(body, fc.array(fc.nat(5000), { maxLength: 6 }), fc.boolean(), (octets, at, labelled) => {
        const head = parseHeaderBlock(`From: a@example.com\r\n${labelled ? 'Content-Transfer-Encoding: 8bit\r\n' : ''}`);
        const run = (simd: boolean, chunks: readonly Buffer[]): string | undefined => {
          const s = new SevenBitScan(head, simd);
          for (const c of chunks) s.update(c);
          return s.end();
        };
        const js = run(false, [octets]);
        assert.equal(run(true, [octets]) === undefined, js === undefined, JSON.stringify(octets.toString('latin1').slice(0, 300)));
        assert.equal(run(true, pieces(octets, at)) === undefined, js === undefined);
        assert.equal(run(false, pieces(octets, at)) === undefined, js === undefined);
        // Only the octets, nothing else: the LineCheck oracle says the same as the scan where no label is involved.
        if (!labelled && !/content-transfer-encoding/i.test(octets.toString('latin1'))) assert.equal(js, check([octets]));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('the encoders', () => {
  const octets = fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a));
  const cuts = fc.array(fc.nat(4000), { maxLength: 8 });

  it('quoted-printable: 7-bit, short lines, the same octets decoded, whatever the chunking', () => {
    fc.assert(
      fc.property(octets, cuts, (data, at) => {
        const whole = run(new QuotedPrintableEncoder(), [data]);
        const chunked = run(new QuotedPrintableEncoder(), pieces(data, at));
        assert.ok(fitFor7Bit(whole), JSON.stringify(whole.toString('latin1')));
        assert.ok(fitFor7Bit(chunked));
        assert.deepEqual(libqp.decode(chunked.toString('latin1')), data);
        assert.deepEqual(libqp.decode(whole.toString('latin1')), data);
      }),
      { numRuns: 300 },
    );
  });

  it('quoted-printable: a line longer than the pending limit still decodes to itself', () => {
    const data = b(`${'y'.repeat(200_000)}\r\nend\r\n`);
    const out = run(new QuotedPrintableEncoder(), pieces(data, [70_000, 140_000]));
    assert.ok(fitFor7Bit(out));
    assert.deepEqual(libqp.decode(out.toString('latin1')), data);
  });

  it('base64: 76-character lines, the same octets decoded, whatever the chunking', () => {
    fc.assert(
      fc.property(octets, cuts, (data, at) => {
        const out = run(new Base64Encoder(), pieces(data, at));
        assert.ok(fitFor7Bit(out));
        assert.ok(out.toString('latin1').split('\r\n').every((l) => l.length <= 76));
        assert.deepEqual(libbase64.decode(out.toString('latin1')), data);
        assert.deepEqual(out, Buffer.from(libbase64.wrap(libbase64.encode(data), 76), 'latin1'));
      }),
      { numRuns: 300 },
    );
  });

  it('base64: a chunk larger than one encoding slice gives the same lines as one call', () => {
    const data = Buffer.from(Array.from({ length: 300_001 }, (_, k) => (k * 31 + (k >> 8)) % 256));
    const expected = Buffer.from(libbase64.wrap(libbase64.encode(data), 76), 'latin1');
    assert.deepEqual(run(new Base64Encoder(), [data]), expected);
    assert.deepEqual(run(new Base64Encoder(), pieces(data, [5, 100_000, 250_003])), expected);
  });

  it('base64 re-wrapped: one endless line (and stray octets) become 76-character lines of the same data', () => {
    fc.assert(
      fc.property(octets, cuts, (data, at) => {
        const oneLine = Buffer.concat([b(libbase64.encode(data)), b('\xff\r\n')]);
        const out = run(new Base64Rewrapper(), pieces(oneLine, at));
        assert.ok(fitFor7Bit(out));
        assert.deepEqual(libbase64.decode(out.toString('latin1')), data);
      }),
      { numRuns: 200 },
    );
  });

  it('quoted-printable re-encoded: raw 8-bit octets and long lines in it, the decoded octets unchanged', () => {
    fc.assert(
      fc.property(octets, cuts, (data, at) => {
        // What a sloppy mailer writes: quoted-printable, then 8-bit octets and a long line left raw in it.
        const sloppy = Buffer.concat([b(libqp.wrap(libqp.encode(data), 76)), b('\r\nraw \xe9\xe8 '), b('z'.repeat(1500)), b('\r\n')]);
        const out = run(new QuotedPrintableReencoder(), pieces(sloppy, at));
        assert.ok(fitFor7Bit(out));
        assert.deepEqual(libqp.decode(out.toString('latin1')), libqp.decode(sloppy.toString('latin1')));
      }),
      { numRuns: 200 },
    );
  });
});

describe('toSevenBit', () => {
  it('says what it leaves as it is: 8-bit header fields of an attached message, 8-bit text outside any part', async () => {
    const message = b(
      [
        'From: a@example.com',
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="b"',
        '',
        'pr\xe9amble',
        '--b',
        'Content-Type: message/rfc822',
        'Content-Disposition: inline',
        '',
        'Subject: D\xe9j\xe0 vu',
        'Content-Type: text/plain; charset=iso-8859-1',
        'Content-Transfer-Encoding: 8bit',
        '',
        'd\xe9j\xe0',
        '--b--',
        '',
      ].join('\r\n'),
    );
    const out: Buffer[] = [];
    const r = await toSevenBit(() => [message], { head: (h) => void out.push(h, b('\r\n')), body: (c) => void out.push(c) });
    assert.deepEqual(r.converted.map((c) => [c.part, c.to]), [[3, 'quoted-printable']]);
    assert.deepEqual(r.leftAsIs.map((l) => l.part), [1, 3]);
    assert.match(Buffer.concat(out).toString('latin1'), /\r\n\r\nd=E9j=E0\r\n--b--/);
  });
});
