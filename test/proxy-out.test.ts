/**
 * The signing proxy with real sockets on 127.0.0.1: a client (our SMTP client)
 * → `out` → a capturing sink. Signatures are checked with our verifier and
 * Mail::DKIM against keys in dnsmasq; every failure path of the issue has a
 * test, and nothing the client saw refused is ever delivered.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { verifyMessage } from '../src/dkim/index.js';
import { createKeyLookup } from '../src/dns/resolver.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { MESSAGES } from './helpers/messages.js';
import { dkimpyVerify, mailDkimVerify } from './helpers/peers.js';
import { client, send, startProxy, type RunningProxy } from './helpers/proxy.js';
import type { NextHop } from '../src/relay/client.js';
import { startDroppingHop, startScriptedHop, startSink, startStallingHop, type Sink } from './helpers/sink.js';
import { makeConfigDir } from './helpers/config-dir.js';
import { eventually } from './helpers/eventually.js';
import { rawClient } from './helpers/raw-client.js';

const MESSAGE = MESSAGES['plain']!;
const replyOf = (r: { lines: readonly string[] }): string => r.lines.join(' ');
let sink: Sink;
let dns: TestDns;
let proxy: RunningProxy;
let records: Map<string, string[]>;
let keyFile: string;
let keyDir: string;

const SPOOL = mkdtempSync(join(tmpdir(), 'dkim-proxy-test-spool-'));
const spoolFiles = (): string[] => readdirSync(SPOOL);

const toml = (relayPort: number, extra = ''): string => `
[out]
listen = "127.0.0.1:0"
relay = "127.0.0.1:${relayPort}"
max_message_bytes = "25M"
spool_threshold = "256K"
spool_dir = "${SPOOL}"
relay_timeout = 5
${extra}

[dns]
servers = ["${dns.server}"]
timeout_ms = 2000

[domain."example.com"]
selector = "s1"
key_file = "${keyFile}"
`;

before(async () => {
  // Make the key first, to publish it, then hand the same key dir to the proxy.
  const probe = makeConfigDir('', [{ domain: 'example.com', selector: 's1' }]);
  records = probe.records;
  keyDir = probe.dir;
  keyFile = `${probe.dir}/keys/example.com/s1.key`;
  dns = await startDnsmasq(records, ['example.com']);
  sink = await startSink();
  proxy = await startProxy('out', toml(sink.port));
});

after(async () => {
  await proxy?.stop();
  await sink?.stop();
  await dns?.stop();
  rmSync(SPOOL, { recursive: true, force: true });
});

beforeEach(() => {
  sink.messages.length = 0;
  sink.dataStarted = 0;
  sink.behaviour = {};
});

async function verifyOurs(data: Buffer): Promise<string[]> {
  const outcomes = await verifyMessage(data, createKeyLookup({ servers: [dns.server], timeoutMs: 2000 }), Math.floor(Date.now() / 1000));
  return outcomes.map((o) => o.result);
}

describe('out: sign and relay', () => {
  it('signs and relays; the next hop\'s reply is the client\'s, and Mail::DKIM and dkimpy verify it', async () => {
    const r = await send(proxy.port, 'alice@example.com', ['bob@example.net'], MESSAGE);
    assert.equal(r.mail.code, 250);
    assert.deepEqual(r.data!.map((x) => x.code), [250]);
    assert.match(r.data![0]!.lines.join(' '), /Ok: queued as SINK0/);
    assert.equal(sink.messages.length, 1);
    const got = sink.messages[0]!;
    assert.match(got.data.toString('latin1'), /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.com; s=s1;/);
    // Byte-transparent otherwise: the original message follows the signature unchanged.
    assert.ok(got.data.subarray(got.data.length - MESSAGE.length).equals(Buffer.from(MESSAGE, 'latin1')));
    assert.deepEqual(await verifyOurs(got.data), ['pass']);
    const file = join(keyDir, 'relayed.eml');
    writeFileSync(file, got.data);
    assert.deepEqual((await mailDkimVerify([file], dns.port)).map((x) => x.result), ['pass']);
    assert.deepEqual((await dkimpyVerify([file], dns.port)).map((x) => x.result), ['pass']);
    const line = proxy.logs.find((l) => l['msg'] === 'message relayed')!;
    assert.deepEqual(line['signatures'], [{ d: 'example.com', s: 's1', a: 'rsa-sha256' }]);
    assert.equal(line['authorDomain'], 'example.com');
    assert.ok(!JSON.stringify(proxy.logs).includes('PRIVATE KEY'), 'no key material in logs');
  });

  it('relays mail from a domain without a block unsigned, and logs why', async () => {
    const r = await send(proxy.port, 'x@other.example', ['bob@example.net'], MESSAGE.replace('alice@example.com', 'x@other.example'));
    assert.deepEqual(r.data!.map((x) => x.code), [250]);
    assert.doesNotMatch(sink.messages[0]!.data.toString('latin1'), /DKIM-Signature/);
    assert.ok(proxy.logs.some((l) => l['unsigned'] === 'no [domain] block for other.example'));
  });

  it('refuses one recipient of three exactly as the next hop did, and delivers to the other two', async () => {
    sink.behaviour = { refuse: new Set(['nobody@example.net']) };
    const r = await send(proxy.port, 'alice@example.com', ['bob@example.net', 'nobody@example.net', 'carol@example.net'], MESSAGE);
    assert.deepEqual(r.rcpt.map((x) => x.code), [250, 550, 250]);
    assert.match(r.rcpt[1]!.lines.join(' '), /<nobody@example\.net>: Recipient address rejected: User unknown/);
    assert.deepEqual(r.data!.map((x) => x.code), [250]);
    assert.deepEqual(sink.messages.map((m) => m.to), [['bob@example.net', 'carol@example.net']]);
  });

  it('passes the next hop\'s 452 at DATA back, and nothing is delivered', async () => {
    sink.behaviour = { data: () => 452 };
    const r = await send(proxy.port, 'alice@example.com', ['bob@example.net'], MESSAGE);
    assert.deepEqual(r.data!.map((x) => x.code), [452]);
    assert.match(r.data![0]!.lines.join(' '), /Insufficient system storage/);
    assert.equal(sink.messages.length, 0);
  });

  it('answers 451 when the next hop drops the connection mid-DATA', async () => {
    const dropper = await startDroppingHop();
    const p = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${dropper.port}"\n`);
    try {
      const r = await send(p.port, 'alice@example.com', ['bob@example.net'], MESSAGE + 'y'.repeat(300_000) + '\r\n');
      assert.equal(r.data![0]!.code, 451);
      assert.match(r.data![0]!.lines.join(" "), /Next hop failed: .*(closed the connection|ECONNRESET|EPIPE)/);
      assert.ok(dropper.dataBytes() > 0, 'the drop happened mid-DATA');
      // The client keeps the message; a retry through a working next hop succeeds.
      const again = await send(proxy.port, 'alice@example.com', ['bob@example.net'], MESSAGE);
      assert.deepEqual(again.data!.map((x) => x.code), [250]);
    } finally {
      await p.stop();
      await dropper.stop();
    }
  });

  it('answers 552 to a message over the limit and relays nothing', async () => {
    const huge = MESSAGE + 'z'.repeat(26 * 1024 * 1024) + '\r\n';
    const r = await send(proxy.port, 'alice@example.com', ['bob@example.net'], huge);
    assert.equal(r.data![0]!.code, 552);
    assert.equal(sink.dataStarted, 0);
  });

  it('normalizes bare LF to CRLF, and signs what it relays', async () => {
    const lf = MESSAGES['trailing whitespace']!.replace(/\r\n/g, '\n');
    const r = await send(proxy.port, 'bob@example.net', ['bob@example.net'], lf.replace('bob@example.net', 'bob@example.com').replace('From: Alice Example <alice@example.com>', 'From: alice@example.com'));
    assert.deepEqual(r.data!.map((x) => x.code), [250]);
    const text = sink.messages[0]!.data.toString('latin1');
    assert.ok(!/[^\r]\n/.test(text), 'CRLF throughout');
    assert.deepEqual(await verifyOurs(sink.messages[0]!.data), ['pass']);
  });

  it('keeps lines starting with "." (stuffing is undone on the way in, redone on the way out)', async () => {
    const dotted = MESSAGES['multipart']! + '.\r\n..two\r\n...three\r\n';
    const r = await send(proxy.port, 'alice@example.com', ['bob@example.net'], dotted);
    assert.deepEqual(r.data!.map((x) => x.code), [250]);
    const got = sink.messages[0]!.data;
    assert.ok(got.subarray(got.length - dotted.length).equals(Buffer.from(dotted, 'latin1')));
    assert.deepEqual(await verifyOurs(got), ['pass']);
  });

  it('takes the first "." off every line that has one (RFC 5321 §4.5.2), however the client cuts its writes', async () => {
    // A client that does not stuff (".not stuffed") loses the dot, as Postfix's smtpd would take it; "..." keeps two.
    const stuffed = MESSAGES['multipart']!.replace(/^\./gm, '..');
    const wire = `${stuffed}...stuffed\r\n.not stuffed\r\n.\r\n`;
    for (const step of [wire.length, 1, 3]) {
      sink.messages.length = 0;
      const c = await rawClient(proxy.port);
      try {
        await c.reply();
        c.write('EHLO raw.test\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n');
        for (let replies = 0; replies < 4; replies++) await c.reply();
        assert.ok(c.lines.some((l) => l.startsWith('354')), c.lines.join(' | '));
        for (let at = 0; at < wire.length; at += step) c.write(Buffer.from(wire.slice(at, at + step), 'latin1'));
        const done = await c.reply();
        assert.match(done[0]!, /^250 /, `step ${step}: ${done.join(' | ')}`);
        const got = sink.messages[0]!.data;
        const want = `${MESSAGES['multipart']!}..stuffed\r\nnot stuffed\r\n`;
        assert.ok(got.subarray(got.length - want.length).equals(Buffer.from(want, 'latin1')), `step ${step}: ${got.toString('latin1').slice(-60)}`);
        assert.deepEqual(await verifyOurs(got), ['pass']);
      } finally {
        c.write('QUIT\r\n');
        c.socket.destroy();
      }
    }
  });

  it('passes SMTPUTF8 mail on with BODY and SMTPUTF8 on MAIL: its header bytes as they came, its 8-bit body re-encoded (transport_encoding = "7bit")', async () => {
    const utf8 = Buffer.from(Buffer.from(MESSAGES['8bit utf-8']!, 'latin1').toString('utf8').replace('juergen@example.com', 'jürgen@example.com'), 'utf8');
    const r = await send(proxy.port, 'jürgen@example.com', ['bob@example.net'], utf8, ' BODY=8BITMIME SMTPUTF8');
    assert.equal(r.mail.code, 250, r.mail.lines.join(' '));
    assert.deepEqual(r.data!.map((x) => x.code), [250]);
    const got = sink.messages[0]!;
    assert.equal(got.from, 'jürgen@example.com');
    assert.equal(got.mailParams['BODY'], '8BITMIME');
    const sent = got.data.toString('latin1');
    const original = utf8.toString('latin1');
    // Every header field but Content-Transfer-Encoding byte for byte (the raw UTF-8 Subject too); the body quoted-printable.
    const headerOf = (m: string): string => m.slice(0, m.indexOf('\r\n\r\n') + 2).replace(/^Content-Transfer-Encoding: [^\r]*\r\n/m, '');
    assert.ok(headerOf(sent).endsWith(headerOf(original)), sent);
    assert.match(sent, /^Content-Transfer-Encoding: quoted-printable\r$/m);
    assert.match(sent, /\r\n\r\nSch=C3=B6ne Gr=C3=BC=C3=9Fe/);
    assert.deepEqual(await verifyOurs(got.data), ['pass']);
  });

  it('passes XFORWARD attributes from the client on to the next hop', async () => {
    const c = await client(proxy.port);
    try {
      // What Postfix's smtp client sends (smtp_send_xforward_command = yes): two commands, a port, an unknown name.
      assert.equal((await c.command('XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.7 PORT=45678 HELO=client.example')).code, 250);
      assert.equal((await c.command('XFORWARD IDENT=2EDB820E144 PROTO=ESMTP SOURCE=REMOTE')).code, 250);
      assert.equal((await c.command('MAIL FROM:<alice@example.com>')).code, 250);
      assert.equal((await c.command('RCPT TO:<bob@example.net>')).code, 250);
      assert.equal((await c.data([Buffer.from(MESSAGE, 'latin1')], 1))[0]!.code, 250);
    } finally {
      await c.quit();
    }
    assert.deepEqual(sink.messages[0]!.xforward, { NAME: '[UNAVAILABLE]', ADDR: '192.0.2.7', PORT: '45678', HELO: 'client.example', IDENT: '2EDB820E144', PROTO: 'ESMTP', SOURCE: 'REMOTE' });
  });

  it('relays nothing when the client vanishes mid-DATA, and leaves no spool file', async () => {
    assert.deepEqual(spoolFiles(), []);
    const c = await rawClient(proxy.port);
    await c.reply();
    c.write('EHLO client.test\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n');
    for (const code of ['250', '250', '250', '354']) assert.equal((await c.reply())[0]!.slice(0, 3), code);
    // Half a message, past the spool threshold, then the connection goes away.
    c.socket.end(Buffer.from(MESSAGE + 'q'.repeat(600_000) + '\r\n', 'latin1'));
    await c.closed;
    await eventually('the spool file removed', () => spoolFiles().length === 0);
    assert.equal(sink.dataStarted, 0);
  });

  it('aborts the next hop\'s copy when the client leaves during the relay: no QUIT inside DATA, no end of data', async () => {
    const staller = await startStallingHop();
    const p = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${staller.port}"\nspool_dir = "${SPOOL}"\n`);
    try {
      const c = await rawClient(p.port);
      await c.reply();
      c.write('EHLO client.test\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n');
      for (const code of ['250', '250', '250', '354']) assert.equal((await c.reply())[0]!.slice(0, 3), code);
      // A message large enough that the proxy blocks on the stalled next hop's backpressure.
      const big = Buffer.from(MESSAGE + 'w'.repeat(76).concat('\r\n').repeat(300_000) + '.\r\n', 'latin1');
      c.write(big.subarray(0, big.length - 3));
      c.write('\r\n.\r\n');
      await staller.stalled;
      c.socket.destroy();
      // Once the proxy has noticed, let the next hop read whatever it was sent.
      await eventually('the next hop\'s copy aborted', () => p.logs.some((l) => l['msg'] === 'client left during a transaction: next-hop transaction aborted'));
      staller.resume();
      const got = (await staller.ended).toString('latin1');
      assert.ok(got.length > 64 * 1024, 'the relay had started');
      assert.doesNotMatch(got, /\r\nQUIT\r\n/, 'no command inside the DATA');
      assert.doesNotMatch(got, /\r\n\.\r\n$/, 'the next hop never saw the end of the message');
    } finally {
      await p.stop();
      await staller.stop();
    }
  });

  it('streams a 20 MB message through the spool, signs it, and removes the spool file', async () => {
    const line = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789\r\n';
    const body = line.repeat(Math.ceil((20 * 1024 * 1024) / line.length));
    const r = await send(proxy.port, 'alice@example.com', ['bob@example.net'], MESSAGE + body);
    assert.deepEqual(r.data!.map((x) => x.code), [250]);
    assert.ok(sink.messages[0]!.data.length > 20 * 1024 * 1024);
    assert.deepEqual(await verifyOurs(sink.messages[0]!.data), ['pass']);
    assert.deepEqual(spoolFiles(), [], 'the spool file is gone');
  });
});

describe('out: the envelope at the next hop', () => {
  it('refuses each recipient with the next hop\'s own reply when it refuses the sender, delivers nothing, and stays in step', async () => {
    sink.behaviour = { refuseSender: new Set(['blocked@example.com']) };
    const c = await client(proxy.port);
    try {
      // MAIL goes on with the first RCPT, so the sender's refusal comes back there, for every recipient.
      assert.equal((await c.command('MAIL FROM:<blocked@example.com>')).code, 250);
      for (const to of ['bob@example.net', 'carol@example.net']) {
        const r = await c.command(`RCPT TO:<${to}>`);
        assert.equal(r.code, 553);
        assert.match(replyOf(r), /<blocked@example\.com>: Sender address rejected: Access denied/);
      }
      assert.equal((await c.command('DATA')).code, 503, 'no recipient was accepted');
      assert.equal((await c.command('RSET')).code, 250);
      assert.equal((await c.command('MAIL FROM:<alice@example.com>')).code, 250);
      assert.equal((await c.command('RCPT TO:<bob@example.net>')).code, 250);
      assert.equal((await c.data([Buffer.from(MESSAGE, 'latin1')], 1))[0]!.code, 250);
      assert.deepEqual(sink.messages.map((m) => [m.from, m.to]), [['alice@example.com', ['bob@example.net']]]);
    } finally {
      await c.quit();
    }
  });

  it('sends XFORWARD, MAIL and RCPT in one write to a next hop that offers PIPELINING', async () => {
    const hop = await startScriptedHop(['PIPELINING', 'XFORWARD NAME ADDR PROTO HELO SOURCE']);
    const p = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${hop.port}"\n`);
    const c = await client(p.port);
    try {
      assert.equal((await c.command('XFORWARD NAME=mail.example.org ADDR=192.0.2.7')).code, 250);
      assert.equal((await c.command('MAIL FROM:<alice@example.com>')).code, 250);
      assert.equal((await c.command('RCPT TO:<bob@example.net>')).code, 250);
      assert.equal((await c.command('RCPT TO:<carol@example.net>')).code, 250);
      assert.equal((await c.data([Buffer.from(MESSAGE, 'latin1')], 2))[0]!.code, 250);
      assert.equal(hop.delivered(), 1);
      const envelope = hop.chunks.filter((k) => /^(XFORWARD|MAIL|RCPT)/.test(k));
      assert.deepEqual(envelope, [
        'XFORWARD NAME=mail.example.org ADDR=192.0.2.7\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\n',
        'RCPT TO:<carol@example.net>\r\n',
      ]);
    } finally {
      await c.quit();
      await p.stop();
      await hop.stop();
    }
  });

  it('answers a pipelined MAIL, RCPT, DATA in one write (RFC 2920 §3.1), and a refusal in the group at once, after what it held', async () => {
    const hop = await startScriptedHop(['PIPELINING', 'CHUNKING'], (line) => (line.startsWith('RCPT TO:<NOBODY@') ? '550 5.1.1 No such user' : undefined));
    const p = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${hop.port}"\n`);
    const rc = await rawClient(p.port);
    // What each read of the socket brought: one write of the proxy's arrives in one read on loopback.
    const reads: string[] = [];
    rc.socket.on('data', (d: string) => reads.push(d));
    try {
      assert.match((await rc.reply())[0]!, /^220 /);
      rc.write('EHLO client.test\r\n');
      assert.match((await rc.reply()).at(-1)!, /^250 /);
      const before = reads.length;
      rc.write('MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n');
      const group = [await rc.reply(), await rc.reply(), await rc.reply()].map((r) => r[0]!.slice(0, 3));
      assert.deepEqual(group, ['250', '250', '354']);
      assert.equal(reads.length - before, 1, `the three replies in one write: ${JSON.stringify(reads.slice(before))}`);
      rc.write(`${MESSAGE}.\r\n`);
      assert.match((await rc.reply())[0]!, /^250 /);
      assert.equal(hop.delivered(), 1);

      // A refused recipient: its 550 goes at once, after the MAIL's 250 that waited for it, and DATA is refused without the proxy's 354.
      rc.write('MAIL FROM:<alice@example.com>\r\nRCPT TO:<nobody@example.net>\r\nDATA\r\n');
      const refused = [await rc.reply(), await rc.reply(), await rc.reply()].map((r) => r[0]!);
      assert.deepEqual(refused.slice(0, 2).map((r) => r.slice(0, 3)), ['250', '550']);
      assert.match(refused[2]!, /^5\d\d /, 'DATA with no recipient is refused');
      assert.match(refused[1]!, /5\.1\.1 No such user/);
      assert.deepEqual(rc.malformed, []);
      assert.equal(hop.delivered(), 1);
    } finally {
      rc.socket.destroy();
      await p.stop();
      await hop.stop();
    }
  });

  it('sends the envelope one command at a time to a next hop without PIPELINING, and no RCPT after a refused MAIL', async () => {
    const hop = await startScriptedHop(['8BITMIME'], (line) => (line.startsWith('MAIL FROM:<BLOCKED@') ? '550 5.7.1 Sender blocked here' : undefined));
    const p = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${hop.port}"\n`);
    const c = await client(p.port);
    try {
      assert.equal((await c.command('MAIL FROM:<blocked@example.com>')).code, 250);
      const refused = await c.command('RCPT TO:<bob@example.net>');
      assert.equal(refused.code, 550);
      assert.match(replyOf(refused), /Sender blocked here/);
      assert.equal((await c.command('RSET')).code, 250);
      assert.equal((await c.command('MAIL FROM:<alice@example.com>')).code, 250);
      assert.equal((await c.command('RCPT TO:<bob@example.net>')).code, 250);
      assert.equal((await c.data([Buffer.from(MESSAGE, 'latin1')], 1))[0]!.code, 250);
      assert.deepEqual(hop.lines, ['MAIL FROM:<BLOCKED@EXAMPLE.COM>', 'MAIL FROM:<ALICE@EXAMPLE.COM>', 'RCPT TO:<BOB@EXAMPLE.NET>']);
      assert.ok(hop.chunks.every((k) => k.split('\r\n').length === 2), 'one command per write');
      assert.equal(hop.delivered(), 1);
    } finally {
      await c.quit();
      await p.stop();
      await hop.stop();
    }
  });

  it('sends the message as one BDAT LAST chunk to a next hop that offers CHUNKING: exact size, not dot-stuffed, signed', async () => {
    const hop = await startScriptedHop(['PIPELINING', 'CHUNKING', '8BITMIME']);
    const p = await startProxy('out', toml(hop.port));
    try {
      const dotted = `${MESSAGE}.a line that starts with a dot\r\n..and one with two\r\n`;
      const r = await send(p.port, 'alice@example.com', ['bob@example.net'], dotted);
      assert.deepEqual(r.data!.map((x) => x.code), [250]);
      assert.equal(hop.bdat.length, 1);
      const sent = hop.bdat[0]!;
      assert.ok(hop.chunks.some((k) => k.startsWith(`BDAT ${sent.length} LAST\r\n`)), 'the command announces the exact size');
      assert.ok(!hop.chunks.some((k) => k.startsWith('DATA')), 'no DATA');
      const text = sent.toString('latin1');
      assert.match(text, /^DKIM-Signature:/);
      assert.ok(text.endsWith('\r\n.a line that starts with a dot\r\n..and one with two\r\n'), 'dots as the client meant them');
      assert.deepEqual(await verifyOurs(sent), ['pass']);
      // Larger than the spool threshold and the socket's buffer: read from the spool file, written under backpressure.
      const big = `${MESSAGE}${'a body line of the big one\r\n'.repeat(40_000)}`;
      assert.deepEqual((await send(p.port, 'alice@example.com', ['bob@example.net'], big)).data!.map((x) => x.code), [250]);
      assert.equal(hop.bdat.length, 2);
      assert.ok(hop.bdat[1]!.toString('latin1').endsWith(big.slice(-200)));
      assert.deepEqual(await verifyOurs(hop.bdat[1]!), ['pass']);
    } finally {
      await p.stop();
      await hop.stop();
    }
  });

  it('never sends part of a BDAT chunk: a message longer or shorter than announced closes the connection, nothing delivered', async () => {
    const hop = await startScriptedHop(['PIPELINING', 'CHUNKING']);
    try {
      for (const [announced, what] of [[5, /shorter/], [2, /longer/]] as const) {
        const c = await client(hop.port);
        await c.pipeline(['MAIL FROM:<alice@example.com>', 'RCPT TO:<bob@example.net>']);
        await assert.rejects(c.bdat([Buffer.from('abc')], announced, 1), (err: Error) => err.name === 'RelayError' && what.test(err.message));
        assert.equal(c.broken, true);
      }
      assert.equal(hop.delivered(), 0);
    } finally {
      await hop.stop();
    }
  });

  it('starts the next transaction with RSET when the client abandons one the next hop had opened', async () => {
    const hop = await startScriptedHop(['PIPELINING']);
    const p = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${hop.port}"\n`);
    const c = await client(p.port);
    try {
      assert.equal((await c.command('MAIL FROM:<alice@example.com>')).code, 250);
      assert.equal((await c.command('RCPT TO:<bob@example.net>')).code, 250);
      assert.equal((await c.command('RSET')).code, 250);
      assert.equal((await c.command('MAIL FROM:<alice@example.com>')).code, 250);
      assert.equal((await c.command('RCPT TO:<carol@example.net>')).code, 250);
      assert.equal((await c.data([Buffer.from(MESSAGE, 'latin1')], 1))[0]!.code, 250);
      assert.deepEqual(hop.lines, ['MAIL FROM:<ALICE@EXAMPLE.COM>', 'RCPT TO:<BOB@EXAMPLE.NET>', 'RSET', 'MAIL FROM:<ALICE@EXAMPLE.COM>', 'RCPT TO:<CAROL@EXAMPLE.NET>']);
    } finally {
      await c.quit();
      await p.stop();
      await hop.stop();
    }
  });
});

describe('out: refusals', () => {
  it('answers 451 "Next hop is down" when the next hop is unreachable, and nothing is accepted', async () => {
    const down = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:1"\n`);
    try {
      const r = await send(down.port, 'alice@example.com', ['bob@example.net'], MESSAGE);
      assert.equal(r.mail.code, 451);
      assert.match(r.mail.lines.join(' '), /Next hop is down .*ECONNREFUSED/);
      assert.equal(r.data, undefined);
    } finally {
      await down.stop();
    }
  });

  it('refuses mail no rule signs when unsigned = "refuse", and the session stays in step for the next message', async () => {
    const probe = makeConfigDir('', [{ domain: 'example.com', selector: 's1' }]);
    const strict = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\n[signing]\nunsigned = "refuse"\n[domain."example.com"]\nselector = "s1"\nkey_file = "${probe.dir}/keys/example.com/s1.key"\n`);
    const c = await client(strict.port);
    try {
      // Big enough that the refusal is decided while most of the message is still to come.
      const foreign = MESSAGE.replace('alice@example.com', 'x@elsewhere.example') + 'filler line\r\n'.repeat(50_000);
      assert.equal((await c.command('MAIL FROM:<x@elsewhere.example>')).code, 250);
      assert.equal((await c.command('RCPT TO:<bob@example.net>')).code, 250);
      const refused = await c.data([Buffer.from(foreign, 'latin1')], 1);
      assert.equal(refused[0]!.code, 550);
      assert.match(refused[0]!.lines.join(' '), /no signing rule for this message \(no \[domain\] block for elsewhere\.example\)/);
      assert.equal((await c.command('MAIL FROM:<alice@example.com>')).code, 250, 'the next command is read as a command');
      assert.equal((await c.command('RCPT TO:<bob@example.net>')).code, 250);
      assert.equal((await c.data([Buffer.from(MESSAGE, 'latin1')], 1))[0]!.code, 250);
      assert.equal(sink.messages.length, 1);
      assert.match(sink.messages[0]!.data.toString('latin1'), /^DKIM-Signature:/);
    } finally {
      await c.quit();
      await strict.stop();
    }
  });

  it('answers 552 to a header block over max_header_bytes, relays nothing, and stays in step', async () => {
    const small = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\nmax_header_bytes = "1K"\n`);
    const c = await client(small.port);
    try {
      const fat = `X-Filler: ${'f'.repeat(2000)}\r\n${MESSAGE}`;
      await c.command('MAIL FROM:<alice@example.com>');
      await c.command('RCPT TO:<bob@example.net>');
      const r = await c.data([Buffer.from(fat, 'latin1')], 1);
      assert.equal(r[0]!.code, 552);
      assert.match(r[0]!.lines.join(' '), /Header block exceeds the limit of 1024 bytes/);
      assert.equal(sink.dataStarted, 0);
      assert.equal((await c.command('MAIL FROM:<alice@example.com>')).code, 250);
    } finally {
      await c.quit();
      await small.stop();
    }
  });

  it('answers 552 to more header fields than max_header_fields', async () => {
    const few = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\nmax_header_fields = 10\n`);
    try {
      const many = Array.from({ length: 20 }, (_, k) => `X-Field-${k}: ${k}\r\n`).join('') + MESSAGE;
      const r = await send(few.port, 'alice@example.com', ['bob@example.net'], many);
      assert.equal(r.data![0]!.code, 552);
      assert.match(r.data![0]!.lines.join(' '), /Too many header fields: 25, the limit is 10/);
      assert.equal(sink.dataStarted, 0);
    } finally {
      await few.stop();
    }
  });

  it('refuses connections over max_connections with 421, and closes idle sessions after idle_timeout', async () => {
    const tight = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\nmax_connections = 2\nidle_timeout = 1\n`);
    const open: NextHop[] = [];
    try {
      open.push(await client(tight.port), await client(tight.port));
      await assert.rejects(client(tight.port), /greeted with 421 .*Too many connected clients/);
      // The two sessions say nothing more: the proxy closes both after the idle timeout...
      await Promise.all(open.map((c) => c.closed));
      // ...which frees their places for new clients.
      const again = await client(tight.port);
      assert.equal(again.greeting!.code, 220);
      again.close();
    } finally {
      open.forEach((c) => c.close());
      await tight.stop();
    }
  });

  it('refuses a client outside allow_clients at connect with 554', async () => {
    const closed = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\nallow_clients = ["192.0.2.0/24"]\n`);
    try {
      await assert.rejects(client(closed.port), /greeted with 554 Access denied: 127\.0\.0\.1 may not use this signing proxy/);
    } finally {
      await closed.stop();
    }
  });
});
