import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseHeaderBlock } from '../dkim/index.js';
import { authorDomain } from './author.js';

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
