/**
 * STARTTLS on both sides: the listener offers it with the configured
 * certificate, and the next hop is reached with TLS off, opportunistic or
 * required. Certificates are made for the test by the openssl command.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NextHop } from '../src/relay/client.js';
import { MESSAGES } from './helpers/messages.js';
import { send, startProxy } from './helpers/proxy.js';
import { startSink, type Sink } from './helpers/sink.js';

let dir: string;
let cert: { key: string; cert: string };
let plainSink: Sink;
let tlsSink: Sink;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-tls-'));
  cert = { key: join(dir, 'key.pem'), cert: join(dir, 'cert.pem') };
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', cert.key, '-out', cert.cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore', timeout: 30_000 });
  plainSink = await startSink();
  tlsSink = await startSink({}, { key: readFileSync(cert.key), cert: readFileSync(cert.cert) });
});

after(async () => {
  await plainSink?.stop();
  await tlsSink?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const listener = (relay: number, extra: string): string => `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${relay}"\n${extra}\n`;

describe('STARTTLS', () => {
  it('the listener offers STARTTLS with the configured certificate, and mail goes through over TLS', async () => {
    const p = await startProxy('out', listener(plainSink.port, `tls_cert = "${cert.cert}"\ntls_key = "${cert.key}"\nrelay_tls = "off"`));
    try {
      // Our client with relay_tls = "required" semantics: it must find STARTTLS and use it.
      const c = await NextHop.open({ host: '127.0.0.1', port: p.port, name: 'client.test', timeoutMs: 10_000, tls: 'required' });
      try {
        assert.equal((await c.command('MAIL FROM:<alice@example.com>')).code, 250);
        assert.equal((await c.command('RCPT TO:<bob@example.net>')).code, 250);
        assert.equal((await c.data([Buffer.from(MESSAGES['plain']!, 'latin1')], 1))[0]!.code, 250);
      } finally {
        await c.quit();
      }
      assert.equal(plainSink.messages.at(-1)!.secure, false, 'relay_tls = "off" keeps the next hop in plain text');
    } finally {
      await p.stop();
    }
  });

  it('without a certificate the listener does not offer STARTTLS', async () => {
    const p = await startProxy('out', listener(plainSink.port, ''));
    try {
      const c = await NextHop.open({ host: '127.0.0.1', port: p.port, name: 'client.test', timeoutMs: 10_000 });
      assert.equal(c.extensions.has('STARTTLS'), false);
      assert.equal(c.extensions.has('8BITMIME'), true);
      assert.equal(c.extensions.has('SMTPUTF8'), true);
      assert.equal(c.extensions.has('PIPELINING'), true);
      assert.equal(c.extensions.has('ENHANCEDSTATUSCODES'), true);
      assert.equal(c.extensions.get('SIZE'), String(50 * 1024 * 1024));
      assert.equal(c.extensions.has('XFORWARD'), true);
      await c.quit();
    } finally {
      await p.stop();
    }
  });

  it('relay_tls = "opportunistic" uses STARTTLS where the next hop offers it', async () => {
    const p = await startProxy('out', listener(tlsSink.port, 'relay_tls = "opportunistic"'));
    try {
      const r = await send(p.port, 'alice@example.com', ['bob@example.net'], MESSAGES['plain']!);
      assert.deepEqual(r.data!.map((x) => x.code), [250]);
      assert.equal(tlsSink.messages.at(-1)!.secure, true);
    } finally {
      await p.stop();
    }
  });

  it('sends the relay host name as SNI, and no SNI when the relay is an address (RFC 6066)', async () => {
    for (const host of ['localhost', '127.0.0.1']) {
      const p = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "${host}:${tlsSink.port}"\nrelay_tls = "required"\n`);
      try {
        const r = await send(p.port, 'alice@example.com', ['bob@example.net'], MESSAGES['plain']!);
        assert.deepEqual(r.data!.map((x) => x.code), [250]);
        const got = tlsSink.messages.at(-1)!;
        assert.equal(got.secure, true);
        assert.equal(got.servername, host === 'localhost' ? 'localhost' : undefined);
      } finally {
        await p.stop();
      }
    }
  });

  it('relay_tls = "required" refuses with 451 when the next hop has no STARTTLS, and relays nothing', async () => {
    const p = await startProxy('out', listener(plainSink.port, 'relay_tls = "required"'));
    const before = plainSink.messages.length;
    try {
      const r = await send(p.port, 'alice@example.com', ['bob@example.net'], MESSAGES['plain']!);
      assert.equal(r.mail.code, 451);
      assert.match(r.mail.lines.join(' '), /does not offer STARTTLS, and relay_tls = "required"/);
      assert.equal(plainSink.messages.length, before);
    } finally {
      await p.stop();
    }
  });
});
