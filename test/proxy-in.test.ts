/**
 * The verifying proxy with real sockets on 127.0.0.1: signed mail → `in` →
 * sink, with keys in dnsmasq; the sink must get one Authentication-Results
 * header with the right results, and the message otherwise unchanged.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { signMessage } from '../src/dkim/index.js';
import { startDnsmasq, startSilentDns, type TestDns } from './helpers/dns-server.js';
import { MESSAGES } from './helpers/messages.js';
import { send, startProxy, type RunningProxy } from './helpers/proxy.js';
import { startSink, type Sink } from './helpers/sink.js';
import { request, zone } from './helpers/engine.js';

let sink: Sink;
let dns: TestDns;
let proxy: RunningProxy;

const inToml = (relay: number, dnsServer: string, timeoutMs = 2000): string =>
  `[in]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${relay}"\nauthserv_id = "mx.test.example"\nchecks = ["dkim"]\n\n[dns]\nservers = ["${dnsServer}"]\ntimeout_ms = ${timeoutMs}\n`;

function signed(text: string, ...requests: Parameters<typeof request>[0][]): Buffer {
  const message = Buffer.from(text, 'latin1');
  const fields = signMessage(message, (requests.length ? requests : [{}]).map(request), Math.floor(Date.now() / 1000));
  return Buffer.concat([Buffer.from(fields.join(''), 'latin1'), message]);
}

const arOf = (data: Buffer): string => /^Authentication-Results: [^]*?\r\n(?=[^ \t])/.exec(data.toString('latin1'))?.[0] ?? '';

before(async () => {
  dns = await startDnsmasq(zone, ['example.com']);
  sink = await startSink();
  proxy = await startProxy('in', inToml(sink.port, dns.server));
});

after(async () => {
  await proxy?.stop();
  await sink?.stop();
  await dns?.stop();
});

beforeEach(() => {
  sink.messages.length = 0;
});

describe('in: verify and relay', () => {
  it('prepends one Authentication-Results with a result per signature, and changes nothing else', async () => {
    const message = signed(MESSAGES['plain']!.replace('alice@example.com', 'alice@example.com'), {}, { algorithm: 'ed25519-sha256' });
    const r = await send(proxy.port, 'alice@example.com', ['bob@example.net'], message);
    assert.deepEqual(r.data!.map((x) => x.code), [250]);
    const got = sink.messages[0]!.data;
    const ar = arOf(got);
    assert.match(ar, /^Authentication-Results: mx\.test\.example;\r\n\tdkim=pass header\.d=example\.com header\.i=@example\.com header\.s=sel header\.a=rsa-sha256 header\.b=\S+;\r\n\tdkim=pass header\.d=example\.com header\.i=@example\.com header\.s=ed header\.a=ed25519-sha256 header\.b=\S+\r\n$/);
    assert.ok(got.subarray(ar.length).equals(message), 'the message follows unchanged');
    const line = proxy.logs.find((l) => l['msg'] === 'message relayed')!;
    assert.deepEqual((line['results'] as { result: string }[]).map((x) => x.result), ['pass', 'pass']);
  });

  it('says dkim=none for unsigned mail and dkim=fail with the reason for a tampered message', async () => {
    await send(proxy.port, 'alice@example.com', ['bob@example.net'], MESSAGES['plain']!);
    assert.match(arOf(sink.messages[0]!.data), /^Authentication-Results: mx\.test\.example;\r\n\tdkim=none\r\n$/);
    const tampered = Buffer.from(signed(MESSAGES['plain']!).toString('latin1').replace('See you tomorrow', 'See you never'), 'latin1');
    await send(proxy.port, 'alice@example.com', ['bob@example.net'], tampered);
    assert.match(arOf(sink.messages[1]!.data), /dkim=fail \(body-changed\) reason="body hash did not verify" header\.d=example\.com/);
  });

  it('removes Authentication-Results that claim our authserv-id (forged upstream), and keeps others', async () => {
    const forged = 'Authentication-Results: mx.test.example; dkim=pass header.d=bank.example\r\nAuthentication-Results: other.example; spf=pass\r\n' + MESSAGES['plain']!;
    await send(proxy.port, 'alice@example.com', ['bob@example.net'], forged);
    const text = sink.messages[0]!.data.toString('latin1');
    assert.equal(text.match(/mx\.test\.example/g)!.length, 1, 'only our own header names our authserv-id');
    assert.doesNotMatch(text, /bank\.example/);
    assert.match(text, /Authentication-Results: other\.example; spf=pass\r\n/);
    assert.ok(proxy.logs.some((l) => l['forgedResultsRemoved'] === 1));
  });

  it('gives temperror within the DNS timeout when the DNS server does not answer, and still relays', async () => {
    const silent = await startSilentDns();
    const p = await startProxy('in', inToml(sink.port, silent.server, 400));
    try {
      const started = Date.now();
      const r = await send(p.port, 'alice@example.com', ['bob@example.net'], signed(MESSAGES['plain']!));
      assert.ok(Date.now() - started < 5000, 'bounded by the DNS timeout');
      assert.deepEqual(r.data!.map((x) => x.code), [250]);
      assert.match(arOf(sink.messages[0]!.data), /dkim=temperror \(dns-temporary\) reason="dns timeout: no answer for sel\._domainkey\.example\.com within 400 ms" header\.d=example\.com/);
    } finally {
      await p.stop();
      await silent.stop();
    }
  });
});
