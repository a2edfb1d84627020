import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { findBodyStart } from '../dkim/index.js';
import { receive, type BodyHandler } from './receive.js';

const collector = (): BodyHandler & { body: Buffer[] } => {
  const body: Buffer[] = [];
  return { body, update: (c) => void body.push(Buffer.from(c)) };
};

async function receiveChunks(parts: Buffer[], limits: { header?: number; message?: number; fields?: number } = {}) {
  const handler = collector();
  const r = await receive(Readable.from(parts), {
    maxHeaderBytes: limits.header ?? 1 << 20,
    maxHeaderFields: limits.fields ?? 1000,
    maxMessageBytes: limits.message ?? 1 << 24,
    spoolThresholdBytes: 1 << 20,
    onHeaders: () => Promise.resolve(handler),
  });
  return { r, handler };
}

function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...at, bytes.length]) {
    if (c > from) out.push(bytes.subarray(from, c));
    from = c;
  }
  return out;
}

// Messages of header-ish lines and blank lines, CRLF, so the separator can fall anywhere (or nowhere).
const message = fc.array(fc.constantFrom('From: a@b.c', 'X: y', ' folded', '', 'body line', '.'), { maxLength: 10 }).map((lines) => Buffer.from(lines.join('\r\n') + (lines.length ? '\r\n' : ''), 'latin1'));

describe('receive: the header/body boundary', () => {
  it('splits where findBodyStart does, and the body handler and the spool get the body, whatever the chunking', async () => {
    await fc.assert(
      fc.asyncProperty(message, fc.array(fc.nat(), { maxLength: 10 }), async (bytes, cuts) => {
        const { r, handler } = await receiveChunks(split(bytes, cuts));
        assert.equal(r.kind, 'ok');
        if (r.kind !== 'ok') return;
        const { headerEnd, bodyStart } = findBodyStart(bytes);
        const expectedBlock = bytes.subarray(0, headerEnd);
        // A message that is all header gets its last CRLF (RFC 5322 allows no body).
        const block = bodyStart === headerEnd && expectedBlock.length > 0 && !expectedBlock.subarray(-2).equals(Buffer.from('\r\n')) ? Buffer.concat([expectedBlock, Buffer.from('\r\n')]) : expectedBlock;
        assert.deepEqual(r.head.block, block);
        assert.deepEqual(Buffer.concat(handler.body), bytes.subarray(bodyStart));
        const spooled = await r.spool.reader();
        assert.ok(Array.isArray(spooled));
        assert.deepEqual(Buffer.concat(spooled), bytes.subarray(bodyStart));
        assert.equal(r.head.fields.map((f) => f.raw).join(''), block.toString('latin1'));
        await r.spool.dispose();
      }),
      { numRuns: 500 },
    );
  });

  it('normalizes bare LF once, before the split', async () => {
    const { r, handler } = await receiveChunks([Buffer.from('From: a@b.c\nSubject: x\n\nline\n')]);
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.equal(r.head.block.toString(), 'From: a@b.c\r\nSubject: x\r\n');
    assert.equal(Buffer.concat(handler.body).toString(), 'line\r\n');
    await r.spool.dispose();
  });

  it('says which limit a message broke, and reads the stream to its end all the same', async () => {
    const header = Buffer.from(`X-Long: ${'a'.repeat(200)}\r\n\r\nbody\r\n`);
    assert.equal((await receiveChunks([header], { header: 100 })).r.kind, 'header-too-large');
    // No separator at all, and already over the header limit.
    assert.equal((await receiveChunks([Buffer.from('X: '.padEnd(300, 'b'))], { header: 100 })).r.kind, 'header-too-large');
    const big = await receiveChunks([Buffer.from('From: a@b.c\r\n\r\n'), Buffer.alloc(5000, 0x61)], { message: 1000 });
    assert.deepEqual([big.r.kind, big.r.bytes], ['too-large', 5015]);
    const many = await receiveChunks([Buffer.from('A: 1\r\n'.repeat(20) + '\r\nbody')], { fields: 10 });
    assert.equal(many.r.kind, 'too-many-fields');
    assert.equal(many.r.kind === 'too-many-fields' ? many.r.fields : 0, 20);
    assert.equal(many.handler.body.length, 0, 'no body handed on');
  });
});
