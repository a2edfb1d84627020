/**
 * `in` as a whole inbound authenticator, over real sockets with DNS from
 * dnsmasq: SPF for the client XFORWARD names, DKIM, DMARC for the From
 * domain, one Authentication-Results, and the verdict actions.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { signMessage } from '../src/dkim/index.js';
import { startDnsmasq, startSilentDns, type TestDns } from './helpers/dns-server.js';
import { request, zone as keyZone } from './helpers/engine.js';
import { MESSAGES } from './helpers/messages.js';
import { client, startProxy, type RunningProxy } from './helpers/proxy.js';
import { startSink, type Sink } from './helpers/sink.js';
import type { Reply } from '../src/relay/client.js';

let sink: Sink;
let dns: TestDns;

const records = new Map<string, string[]>([
  ...keyZone,
  ['example.com', ['v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all']],
  ['_dmarc.example.com', ['v=DMARC1; p=reject; rua=mailto:dmarc@example.com']],
  ['mail.example.org', ['v=spf1 a:mail.example.org -all', 'not spf']],
]);

const toml = (relay: number, dnsServer: string, extra = '', timeoutMs = 2000): string =>
  `[in]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${relay}"\nauthserv_id = "mx.test.example"\nhostname = "mx.test.example"\n${extra}\n[dns]\nservers = ["${dnsServer}"]\ntimeout_ms = ${timeoutMs}\n`;

const signed = (text: string): Buffer => {
  const message = Buffer.from(text, 'latin1');
  return Buffer.concat([Buffer.from(signMessage(message, [request()], Math.floor(Date.now() / 1000)).join(''), 'latin1'), message]);
};

const arOf = (data: Buffer): string => /^Authentication-Results: [^]*?\r\n(?=[^ \t])/.exec(data.toString('latin1'))?.[0] ?? '';

/** One transaction with XFORWARD first, as Postfix's smtpd_proxy_filter sends it. */
async function sendVia(port: number, xforward: string, from: string, message: Buffer | string): Promise<{ xforward: Reply; data: Reply[] | undefined }> {
  const c = await client(port);
  try {
    const xf = await c.command(`XFORWARD ${xforward}`);
    const mail = await c.command(`MAIL FROM:<${from}>`);
    const rcpt = await c.command('RCPT TO:<bob@example.net>');
    const data = mail.code === 250 && rcpt.code === 250 ? await c.data([typeof message === 'string' ? Buffer.from(message, 'latin1') : message], 1) : undefined;
    return { xforward: xf, data };
  } finally {
    await c.quit();
  }
}

before(async () => {
  dns = await startDnsmasq(records, ['example.com', 'example.org', 'example.net']);
  sink = await startSink();
});

after(async () => {
  await sink?.stop();
  await dns?.stop();
});

beforeEach(() => {
  sink.messages.length = 0;
});

describe('in: SPF, DKIM and DMARC in one pass', () => {
  let proxy: RunningProxy;
  before(async () => {
    proxy = await startProxy('in', toml(sink.port, dns.server));
  });
  after(async () => proxy?.stop());

  it('checks SPF for the client XFORWARD names, and writes spf=, dkim=, dmarc= in one field', async () => {
    const r = await sendVia(proxy.port, 'ADDR=192.0.2.10 HELO=mail.example.com', 'alice@example.com', signed(MESSAGES['plain']!));
    assert.equal(r.xforward.code, 250);
    assert.deepEqual(r.data!.map((x) => x.code), [250]);
    assert.match(
      arOf(sink.messages[0]!.data),
      /^Authentication-Results: mx\.test\.example;\r\n\tspf=pass smtp\.mailfrom=alice@example\.com \(example\.com: matched ip4:192\.0\.2\.0\/24\);\r\n\tdkim=pass header\.d=example\.com [^;]+;\r\n\tdmarc=pass \(p=reject dis=none\) header\.from=example\.com;\r\n\tarc=none\r\n$/,
    );
    const line = proxy.logs.findLast((l) => l['msg'] === 'message relayed')!;
    assert.deepEqual(line['spf'], { result: 'pass', identity: 'mailfrom', sender: 'alice@example.com', reason: 'example.com: matched ip4:192.0.2.0/24' });
    assert.deepEqual((line['dmarc'] as Record<string, unknown>)['result'], 'pass');
  });

  it('an SPF fail with no DKIM signature fails DMARC, reported (reject_fail is off by default) and relayed', async () => {
    const r = await sendVia(proxy.port, 'ADDR=203.0.113.5 HELO=evil.example', 'alice@example.com', MESSAGES['plain']!);
    assert.deepEqual(r.data!.map((x) => x.code), [250]);
    assert.match(arOf(sink.messages[0]!.data), /\tspf=fail smtp\.mailfrom=alice@example\.com \(example\.com: matched -all\);\r\n\tdkim=none;\r\n\tdmarc=fail \(p=reject dis=reject\) header\.from=example\.com;\r\n\tarc=none\r\n$/);
  });

  it('an IPv6 client from XFORWARD (IPV6: prefix), and ADDR=[UNAVAILABLE] (SPF none, not the socket peer)', async () => {
    await sendVia(proxy.port, 'ADDR=IPV6:2001:db8::25 HELO=mail.example.com', 'alice@example.com', MESSAGES['plain']!);
    assert.match(arOf(sink.messages[0]!.data), /\tspf=pass smtp\.mailfrom=alice@example\.com \(example\.com: matched ip6:2001:db8::\/32\)/);
    await sendVia(proxy.port, 'ADDR=[UNAVAILABLE] HELO=[UNAVAILABLE]', 'alice@example.com', MESSAGES['plain']!);
    assert.match(arOf(sink.messages[1]!.data), /\tspf=none smtp\.mailfrom=alice@example\.com \(the client address is unavailable XFORWARD ADDR=\[UNAVAILABLE\]\);/);
  });

  it('a null sender is checked by its HELO name', async () => {
    await sendVia(proxy.port, 'ADDR=192.0.2.77 HELO=mail.example.org', '', MESSAGES['plain']!);
    // mail.example.org's record needs an A lookup; the name has none, so the client does not match.
    assert.match(arOf(sink.messages[0]!.data), /\tspf=fail smtp\.helo=mail\.example\.org \(mail\.example\.org: matched -all\);/);
  });
});

describe('in: verdict actions', () => {
  it('reject_fail: 550 5.7.1 at the client for a DMARC fail under p=reject, nothing relayed, logged with the reason', async () => {
    const proxy = await startProxy('in', toml(sink.port, dns.server, 'reject_fail = true\n'));
    try {
      const refused = await sendVia(proxy.port, 'ADDR=203.0.113.5 HELO=evil.example', 'alice@example.com', MESSAGES['plain']!);
      assert.equal(refused.data![0]!.code, 550);
      assert.equal(refused.data![0]!.enhanced, '5.7.1');
      assert.match(refused.data![0]!.lines.join(' '), /DMARC policy of example\.com is reject/);
      assert.equal(sink.messages.length, 0);
      const line = proxy.logs.find((l) => l['msg'] === 'message refused')!;
      assert.equal(line['verdict'], 'reject');
      assert.match(String(line['verdictReason']), /no relaxedly aligned DKIM pass/);
      // The same sender with its DKIM signature passes, reject_fail or not.
      const ok = await sendVia(proxy.port, 'ADDR=203.0.113.5 HELO=evil.example', 'alice@example.com', signed(MESSAGES['plain']!));
      assert.equal(ok.data![0]!.code, 250);
    } finally {
      await proxy.stop();
    }
  });

  it('reject_error: 451 when DNS does not answer, within the DNS timeout; off, the message is relayed with temperror', async () => {
    const silent = await startSilentDns();
    const deferring = await startProxy('in', toml(sink.port, silent.server, 'reject_error = true\n', 300));
    const reporting = await startProxy('in', toml(sink.port, silent.server, '', 300));
    try {
      const started = Date.now();
      const deferred = await sendVia(deferring.port, 'ADDR=192.0.2.10 HELO=mail.example.com', 'alice@example.com', signed(MESSAGES['plain']!));
      assert.equal(deferred.data![0]!.code, 451);
      assert.equal(deferred.data![0]!.enhanced, '4.7.0');
      assert.ok(Date.now() - started < 5000, 'bounded by the DNS timeout');
      assert.equal(sink.messages.length, 0);
      const relayed = await sendVia(reporting.port, 'ADDR=192.0.2.10 HELO=mail.example.com', 'alice@example.com', signed(MESSAGES['plain']!));
      assert.equal(relayed.data![0]!.code, 250);
      assert.match(arOf(sink.messages[0]!.data), /spf=temperror .*\r\n\tdkim=temperror .*\r\n\tdmarc=temperror /s);
    } finally {
      await deferring.stop();
      await reporting.stop();
      await silent.stop();
    }
  });
});
