import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isSelector } from '../src/dkim/signature.js';
import { expandHeaderList, formatAuthenticationResults, MessageSigner, PreparedSigner, parseHeaderBlock, SignRequestError, signMessage } from '../src/dkim/index.js';
import { MESSAGES } from './helpers/messages.js';
import { NOW, SAMPLE, request, results, sign, verify, zone } from './helpers/engine.js';
import { ROOT } from './helpers/fixtures.js';

const CANONS = [
  { header: 'relaxed', body: 'relaxed' },
  { header: 'simple', body: 'simple' },
  { header: 'relaxed', body: 'simple' },
  { header: 'simple', body: 'relaxed' },
] as const;

describe('sign and verify', () => {
  for (const [name, message] of Object.entries(MESSAGES)) {
    it(`round-trips "${name}" for every algorithm and canonicalization`, async () => {
      for (const algorithm of ['rsa-sha256', 'ed25519-sha256'] as const) {
        for (const canonicalization of CANONS) {
          const signed = sign(message, { algorithm, canonicalization });
          assert.deepEqual(results(await verify(signed)), ['pass'], `${algorithm} ${canonicalization.header}/${canonicalization.body}`);
        }
      }
    });
  }

  it('makes several signatures in one pass, each verifying', async () => {
    const signed = sign(SAMPLE, { algorithm: 'rsa-sha256' }, { algorithm: 'ed25519-sha256', canonicalization: { header: 'simple', body: 'simple' } });
    assert.deepEqual(results(await verify(signed)), ['pass', 'pass']);
  });

  it('makes the same fields, byte for byte, with the RSA operations on the thread pool', async () => {
    const bytes = Buffer.from(MESSAGES['multipart']!, 'latin1');
    const split = bytes.indexOf('\r\n\r\n') + 2;
    const requests = [request({ algorithm: 'rsa-sha256' }), request({ algorithm: 'ed25519-sha256' }), request({ algorithm: 'rsa-sha256', canonicalization: { header: 'simple', body: 'simple' } })].map((r) => PreparedSigner.prepare(r));
    const signer = (): MessageSigner => {
      const s = new MessageSigner(bytes.toString('latin1', 0, split), requests);
      s.update(bytes.subarray(split + 2));
      return s;
    };
    const pooled = await signer().finishAsync(NOW);
    assert.equal(pooled.length, 3);
    assert.deepEqual(pooled, signer().finish(NOW));
    const signed = Buffer.concat([Buffer.from(pooled.join(''), 'latin1'), bytes]);
    assert.deepEqual(results(await verify(signed)), ['pass', 'pass', 'pass']);
  });

  it('fails when any signed octet changes (body or signed header value)', async () => {
    const message = Buffer.from(MESSAGES['multipart']!, 'latin1');
    const signed = sign(message, {}, { algorithm: 'ed25519-sha256' });
    const text = signed.toString('latin1');
    const bodyStart = text.indexOf('\r\n\r\n') + 4;
    // Candidate positions: body octets that canonicalization keeps, and the From/Subject values.
    const positions: number[] = [];
    for (let k = bodyStart; k < text.length; k++) if (!/[ \t\r\n]/.test(text[k]!)) positions.push(k);
    for (const header of ['\r\nFrom: ', '\r\nSubject: ']) {
      const start = text.indexOf(header) + header.length;
      for (let k = start; text[k] !== '\r'; k++) if (text[k] !== ' ') positions.push(k);
    }
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...positions), fc.constantFrom('Q', 'z', '7', '#'), async (pos, ch) => {
        fc.pre(text[pos] !== ch);
        const tampered = Buffer.from(text.slice(0, pos) + ch + text.slice(pos + 1), 'latin1');
        assert.deepEqual(results(await verify(tampered)), ['fail', 'fail']);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses rsa-sha1 signing unless the legacy switch is on, and then verifies it only when allowed', async () => {
    assert.throws(() => signMessage(Buffer.from(SAMPLE), [request({ algorithm: 'rsa-sha1' })], 0), SignRequestError);
    const signed = sign(SAMPLE, { algorithm: 'rsa-sha1', allowSha1: true });
    assert.deepEqual(results(await verify(signed)), ['policy']);
    assert.deepEqual(results(await verify(signed, { allowSha1: true })), ['pass']);
  });

  it('refuses a key that does not fit the algorithm and an identity outside the domain', () => {
    assert.throws(() => signMessage(Buffer.from(SAMPLE), [request({ algorithm: 'ed25519-sha256', key: request().key })], 0), /needs an ed25519 key/);
    assert.throws(() => signMessage(Buffer.from(SAMPLE), [request({ identity: '@fexample.com' })], 0), /not within example.com/);
  });

  it('accepts RFC 6376 selectors (dotted, with _) and refuses the rest, wherever selectors are written', () => {
    for (const ok of ['s2026', 'rsa-2026', 'a.b', '_x', 'dkim1024.news']) assert.ok(isSelector(ok), ok);
    for (const bad of ['', '-x', 'x-', 'a..b', 'bad selector', 'mail_2024!', 'a.']) assert.ok(!isSelector(bad), bad);
    assert.throws(() => signMessage(Buffer.from(SAMPLE), [request({ selector: 'x-' })], 0), /selector "x-" is not/);
  });

  it('expands Momentum header modifiers in order, bottom-up, with over-signing', () => {
    const fields = parseHeaderBlock('Received: a\r\nReceived: b\r\nFrom: x\r\nSubject: s\r\nX-Two: 1\r\nX-Two: 2\r\n');
    assert.deepEqual(expandHeaderList(['Received+', 'Received', 'X-Example*', 'From', 'Subject?', 'Cc?'], fields, false), [
      'Received', 'Received', 'Received', 'X-Example', 'From', 'Subject',
    ]);
    assert.deepEqual(expandHeaderList(['From', 'X-Two', 'Cc', 'Subject?'], fields, true), ['From', 'From', 'X-Two', 'X-Two', 'X-Two', 'Cc', 'Subject']);
    assert.deepEqual(expandHeaderList(['X-Two+', 'X-Two*'], fields, true), ['X-Two', 'X-Two', 'X-Two']);
  });

  it('writes Authentication-Results with RFC 6008 header.b and reasons', async () => {
    const signed = sign(SAMPLE, {}, { algorithm: 'ed25519-sha256' });
    const tampered = signed.toString('latin1').replace('Subject: Lunch', 'Subject: Dinner');
    const ar = formatAuthenticationResults('mx.example.net', await verify(tampered));
    assert.match(ar, /^Authentication-Results: mx\.example\.net;\r\n\tdkim=fail \(header-changed\) reason="signature did not verify" header\.d=example\.com header\.i=@example\.com header\.s=sel header\.a=rsa-sha256 header\.b="?[A-Za-z0-9+/]{8,}"?;\r\n\tdkim=fail /);
    assert.equal(formatAuthenticationResults('mx.example.net', []), 'Authentication-Results: mx.example.net;\r\n\tdkim=none\r\n');
  });

  it('writes Authentication-Results that an independent RFC 8601 parser (python3-authres) reads back', async () => {
    const signed = sign(SAMPLE, {}, { algorithm: 'ed25519-sha256', identity: 'alice@news.example.com' });
    const noKey = new Map([...zone].filter(([name]) => !name.startsWith('ed.')));
    const fields = [
      formatAuthenticationResults('mx.example.net', await verify(signed)),
      formatAuthenticationResults('mx.example.net', await verify(signed.toString('latin1').replace('Lunch', 'Brunch'))),
      formatAuthenticationResults('mx.example.net', await verify(signed, {}, noKey)),
      formatAuthenticationResults('mx.example.net', await verify(`DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s="x"\r\n${SAMPLE}`)),
      formatAuthenticationResults('mx.example.net', []),
    ].map((f) => f.replace(/\r\n$/, ''));
    const run = promisify(execFile);
    const { stdout } = await run('/usr/bin/python3', [`${ROOT}test/peers/authres_check.py`, ...fields], { timeout: 20_000 });
    const blocks = stdout.split('--\n').filter(Boolean).map((b) => b.trim().split('\n'));
    assert.equal(blocks.length, 5);
    for (const b of blocks) assert.equal(b[0], 'authserv-id mx.example.net');
    assert.match(blocks[0]![1]!, /^dkim=pass header\.d=example\.com header\.i=@example\.com header\.s=sel header\.a=rsa-sha256 header\.b=\S{8,}$/);
    assert.match(blocks[0]![2]!, /^dkim=pass header\.d=example\.com header\.i=alice@news\.example\.com header\.s=ed header\.a=ed25519-sha256 header\.b=\S{8,}$/);
    assert.match(blocks[1]![1]!, /^dkim=fail reason=signature did not verify header\.d=example\.com/);
    assert.match(blocks[2]![2]!, /^dkim=permerror reason=no key: no key record at ed\._domainkey\.example\.com header\.d=example\.com/);
    assert.match(blocks[3]![1]!, /^dkim=permerror reason=signature syntax: /);
    assert.deepEqual(blocks[4]!.slice(1), ['dkim=none']);
  });
});
