/**
 * Property tests with random input: the listener (real sockets on loopback)
 * under random command sequences, random bytes, very long lines, NUL and bare
 * CR, pipelined garbage and abrupt closes; the header and tag-list parsers
 * and the verifier under random header blocks. Never a crash, never a reply
 * that is not well-formed SMTP, never a message relayed that its client did
 * not finish. Bounded: a fixed number of cases, each with a time limit.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { MessageVerifier, parseHeaderBlock, parseKeyRecord, parseSignature, parseTagList } from '../src/dkim/index.js';
import { MESSAGES } from './helpers/messages.js';
import { send, startProxy, type RunningProxy } from './helpers/proxy.js';
import { rawClient } from './helpers/raw-client.js';
import { startSink, type Sink } from './helpers/sink.js';

/** Batches of sessions run side by side (smtp-server waits 100 ms before each greeting, to catch early talkers). */
const BATCHES = Number(process.env['DKIM_PROXY_FUZZ_BATCHES'] ?? 30);
const PER_BATCH = 16;

let sink: Sink;
let proxy: RunningProxy;

before(async () => {
  sink = await startSink();
  proxy = await startProxy(
    'in',
    `[in]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\nauthserv_id = "mx.test"\nmax_message_bytes = 65536\nmax_header_bytes = 8192\ncommand_timeout = 1\ndata_timeout = 1\n`,
  );
});
after(async () => {
  await proxy.stop();
  await sink.stop();
});

/** A whole transaction, message finished: a unique token in it, so the sink's copy can be traced back. */
const complete = (token: string): string => `EHLO fuzz.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nFrom: <a@example.com>\r\nSubject: ${token}\r\n\r\nbody ${token}\r\n..dot\r\n.\r\n`;

type Piece = { readonly kind: 'line'; readonly text: string } | { readonly kind: 'message' } | { readonly kind: 'bytes'; readonly bytes: Uint8Array };

const piece: fc.Arbitrary<Piece> = fc.oneof(
  fc.constantFrom('EHLO fuzz.test', 'HELO fuzz.test', 'MAIL FROM:<a@example.com>', 'MAIL FROM:<>', 'RCPT TO:<b@example.net>', 'DATA', 'RSET', 'NOOP', 'BDAT 10', 'STARTTLS', 'AUTH PLAIN', 'VRFY b', 'XFORWARD ADDR=192.0.2.1', 'MAIL FROM:<a@example.com> BODY=8BITMIME SIZE=100').map((text): Piece => ({ kind: 'line', text })),
  fc.string({ maxLength: 40 }).map((text): Piece => ({ kind: 'line', text })),
  fc.integer({ min: 1000, max: 20_000 }).map((n): Piece => ({ kind: 'line', text: 'X'.repeat(n) })),
  fc.constantFrom('MAIL FROM:<a\u0000@example.com>', 'RCPT TO:<b@example.net>\r', 'NOOP\rNOOP', '\r\r\r', '\u0000\u0000').map((text): Piece => ({ kind: 'line', text })),
  fc.constant<Piece>({ kind: 'message' }),
  fc.uint8Array({ maxLength: 200 }).map((bytes): Piece => ({ kind: 'bytes', bytes })),
);

const session = fc.record({
  pieces: fc.array(piece, { maxLength: 12 }),
  /** Sent in one write (pipelined) or one piece per write. */
  pipelined: fc.boolean(),
  /** How it ends: QUIT, a half-close, an abrupt reset, or a message cut off then a reset. */
  end: fc.constantFrom('quit', 'half-close', 'reset', 'cut'),
  /** Talks before the greeting (one session in ten). */
  early: fc.integer({ min: 0, max: 9 }).map((k) => k === 0),
});

describe('fuzzing the listener', () => {
  it(`${BATCHES * PER_BATCH} random sessions, ${PER_BATCH} at a time: no crash, only well-formed replies, nothing relayed that was cut off`, async () => {
    let n = 0;
    let replies = 0;
    const relayedBefore = sink.messages.length;
    const run = async ({ pieces, pipelined, end, early }: { pieces: Piece[]; pipelined: boolean; end: string; early: boolean }): Promise<void> => {
      const id = n++;
      const c = await rawClient(proxy.port);
      // An early talker is told off at once (421); the rest wait for the greeting.
      if (!early) assert.match((await c.reply())[0]!, /^220 /);
      const parts: Buffer[] = pieces.map((p, k) => {
        if (p.kind === 'line') return Buffer.from(`${p.text}\r\n`, 'latin1');
        if (p.kind === 'bytes') return Buffer.from(p.bytes);
        return Buffer.from(complete(`fuzz-${id}-${k}`), 'latin1');
      });
      if (end === 'cut') parts.push(Buffer.from(`EHLO fuzz.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nFrom: <a@example.com>\r\nSubject: cut-${id}\r\n\r\nhalf a message cut-${id}\r\n`, 'latin1'));
      if (end === 'quit') parts.push(Buffer.from('QUIT\r\n'));
      if (pipelined) c.write(Buffer.concat(parts));
      else for (const p of parts) c.write(p);
      // smtp-server answers nothing more once the client half-closes; a QUIT that lands inside
      // a DATA is message text, and data_timeout ends that session.
      if (end === 'half-close') c.socket.end();
      if (end === 'reset' || end === 'cut') {
        // Let some of it be read first, sometimes.
        await new Promise((r) => setImmediate(r));
        c.socket.destroy();
      }
      const closed = await Promise.race([c.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000).unref())]);
      c.socket.destroy();
      assert.ok(closed, `session ${id} ended within 5 s`);
      assert.deepEqual(c.malformed, [], `malformed reply lines in session ${id}`);
      replies += c.lines.length;
    };
    await fc.assert(
      fc.asyncProperty(fc.array(session, { minLength: PER_BATCH, maxLength: PER_BATCH }), async (batch) => {
        await Promise.all(batch.map(run));
      }),
      { numRuns: BATCHES, seed: Number(process.env['DKIM_PROXY_FUZZ_SEED'] ?? 20261201) },
    );
    const relayed = sink.messages.slice(relayedBefore).map((m) => m.data.toString('latin1'));
    assert.deepEqual(relayed.filter((m) => /cut-\d+/.test(m)), [], 'no message that was cut off was relayed');
    for (const m of relayed) assert.match(m, /^Authentication-Results: mx\.test;/, 'every relayed message went through the verifier');
    // Still up, and serving.
    const r = await send(proxy.port, 'a@example.com', ['b@example.net'], MESSAGES['plain']!);
    assert.equal(r.data![0]!.code, 250);
    assert.ok(replies > BATCHES * PER_BATCH, 'the sessions got replies');
    assert.ok(relayed.length > 0, 'some sessions finished a message, and it was relayed');
  });
});

/** Octet strings (latin1), biased toward the characters headers and tag-lists are made of. */
const octets = fc.array(fc.oneof(fc.constantFrom(':', ';', '=', ' ', '\t', '\r', '\n', '\r\n', '\r\n ', 'a', 'h', 'b', 'v', 'DKIM-Signature', 'From'), fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c))), { maxLength: 200 }).map((a) => a.join(''));

describe('fuzzing the parsers', () => {
  it('the header parser never throws, and its fields put together are the input', () => {
    fc.assert(
      fc.property(octets, (s) => {
        const fields = parseHeaderBlock(s);
        assert.equal(fields.map((f) => f.raw).join(''), s);
      }),
      { numRuns: 5000 },
    );
  });

  it('the tag-list parser never throws; a list it accepts has each value inside the input', () => {
    fc.assert(
      fc.property(octets, (s) => {
        const r = parseTagList(s);
        if (r.ok) for (const t of r.tags.values()) assert.ok(s.slice(t.valueStart, t.valueEnd).includes(t.value));
        parseKeyRecord(s);
      }),
      { numRuns: 5000 },
    );
  });

  it('signature parsing and verification never throw on random DKIM-Signature fields', () => {
    fc.assert(
      fc.property(octets, fc.constantFrom('', `v=1; a=rsa-sha256; d=example.com; s=sel; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=`), (tail, prefix) => {
        const block = `DKIM-Signature: ${prefix}${tail}\r\nFrom: a@example.com\r\n`;
        for (const f of parseHeaderBlock(block)) if (f.key === 'dkim-signature') parseSignature(f);
        const v = new MessageVerifier(block, { maxSignatures: 3 });
        v.update(Buffer.from('body\r\n'));
        v.finish(new Map(v.keyQueries().map((q) => [q, { kind: 'nxdomain' } as const])), 1_790_000_000);
      }),
      { numRuns: 3000 },
    );
  });
});
