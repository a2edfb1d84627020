import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { domainToASCII } from 'node:url';
import fc from 'fast-check';
import addressparser from 'nodemailer/lib/addressparser/index.js';
import { parseHeaderBlock, type HeaderField } from '../dkim/index.js';
import { asciiDomain, authorDomain, mailboxes } from './author.js';

const domain = (headers: string): string => {
  const r = authorDomain(parseHeaderBlock(Buffer.from(headers, 'utf8').toString('latin1')));
  return r.ok ? `${r.source}:${r.domain}` : `error:${r.reason}`;
};

describe('author domain (DKIM-PITFALLS 26)', () => {
  it('reads the From mailbox, whatever the display name holds', () => {
    assert.equal(domain('From: Alice <alice@Example.COM>\r\n'), 'from:example.com');
    assert.equal(domain('From: =?UTF-8?Q?J=C3=BCrgen_a@evil.test?= <j@example.com>\r\n'), 'from:example.com');
    assert.equal(domain('From: "Mallory, admin@evil.test" <m@example.com>\r\n'), 'from:example.com');
    assert.equal(domain('From: m@example.com (not me@evil.test)\r\n'), 'from:example.com');
    assert.equal(domain('From:\r\n  Alice\r\n <alice@news.example.com>\r\n'), 'from:news.example.com');
  });

  it('uses Sender when From has several mailboxes (RFC 5322 §3.6.2)', () => {
    assert.equal(domain('From: a@one.test, b@two.test\r\nSender: list@example.org\r\n'), 'sender:example.org');
    assert.equal(domain('From: Team: a@one.test, b@two.test;\r\nSender: <x@example.net>\r\n'), 'sender:example.net');
    assert.match(domain('From: a@one.test, b@two.test\r\n'), /^error:From has 2 addresses/);
  });

  it('turns an IDN into its A-label', () => {
    assert.equal(domain('From: k@bücher.example\r\n'), 'from:xn--bcher-kva.example');
  });

  it('refuses what it cannot attribute', () => {
    assert.equal(domain('Subject: x\r\n'), 'error:no From header');
    assert.match(domain('From: a@one.test\r\nFrom: b@two.test\r\n'), /^error:2 From headers/);
    assert.match(domain('From: undisclosed\r\n'), /^error:/);
    assert.match(domain('From: a@[192.0.2.1]\r\n'), /^error:no usable domain/);
  });
});

describe('author mailbox fast path', () => {
  const viaParser = (value: string): string[] =>
    addressparser(value.replace(/\r?\n/g, ''), { flatten: true })
      .map((a) => a.address)
      .filter((a) => a !== '');
  // As the proxy has it: the UTF-8 bytes of the field, read as a binary string.
  const field = (value: string): HeaderField => parseHeaderBlock(Buffer.from(`From:${value}\r\n`, 'utf8').toString('latin1'))[0]!;

  it('gives what the address parser gives, for any From value', () => {
    const atom = fc.stringMatching(/^[A-Za-z0-9_+-]{1,6}$/);
    const piece = fc.oneof(
      atom,
      fc.constantFrom(' ', '  ', '\t', '.', '@', '<', '>', '"', '(', ')', ',', ';', ':', '=?utf-8?q?x?=', '\\', '[', ']', 'é', 'example.com', 'a@b.c'),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (parts) => {
        const value = parts.join('');
        assert.deepEqual(mailboxes(field(value)), viaParser(value), JSON.stringify(value));
      }),
      { numRuns: 5000 },
    );
  });

  it('gives what the address parser gives, for the shapes it takes', () => {
    const word = fc.stringMatching(/^[A-Za-z0-9]{1,8}$/);
    const local = fc.array(fc.stringMatching(/^[A-Za-z0-9_+-]{1,6}$/), { minLength: 1, maxLength: 3 }).map((a) => a.join('.'));
    const domainName = fc.array(fc.stringMatching(/^[A-Za-z0-9-]{1,8}$/), { minLength: 2, maxLength: 4 }).map((a) => a.join('.'));
    const value = fc.tuple(fc.array(word, { maxLength: 3 }), local, domainName, fc.boolean(), fc.constantFrom('', ' ', '\t ')).map(([name, l, d, bracket, pad]) =>
      bracket || name.length > 0 ? `${pad}${name.join(' ')}${name.length ? ' ' : ''}<${l}@${d}>${pad}` : `${pad}${l}@${d}${pad}`,
    );
    fc.assert(
      fc.property(value, (v) => {
        assert.deepEqual(mailboxes(field(v)), viaParser(v), JSON.stringify(v));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('A-label fast path', () => {
  it('gives what domainToASCII gives, for any name of LDH pieces, dots, numbers and A-label prefixes', () => {
    const piece = fc.oneof(
      fc.stringMatching(/^[a-z0-9-]{1,5}$/),
      fc.constantFrom('.', '..', '-', 'xn--', 'xn--bcher-kva', 'xn--abc', '0x', '0x7f', '123', '1', 'X', 'é', '_', 'a'),
    );
    fc.assert(
      fc.property(fc.array(piece, { minLength: 1, maxLength: 8 }), (parts) => {
        const name = parts.join('');
        assert.equal(asciiDomain(name), domainToASCII(name), JSON.stringify(name));
      }),
      { numRuns: 20000 },
    );
  });

  it('leaves numeric last labels and A-labels to the WHATWG parser', () => {
    assert.equal(asciiDomain('0x7f.1'), '127.0.0.1');
    assert.equal(asciiDomain('example.123'), '');
    // An A-label goes to the parser, whose verdict on one that does not decode differs across Node lines ('' on 20, kept on 24).
    assert.equal(asciiDomain('xn--abc.example'), domainToASCII('xn--abc.example'));
    assert.equal(asciiDomain('mail.example.com'), 'mail.example.com');
  });
});
