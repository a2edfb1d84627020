/**
 * A hop that changes the message on its way, for real: a private Postfix
 * whose smtp client does not get 8BITMIME (nor SMTPUTF8) from the next
 * server (`smtp_discard_ehlo_keywords`), so it downgrades 8-bit MIME parts to
 * quoted-printable, and breaks lines over 998 octets as it always does.
 *
 * Signed by `out` with transport_encoding = "preserve", such messages arrive
 * broken (the test shows it, and explain names the change); with "7bit" they
 * verify in Mail::DKIM, dkimpy, OpenDKIM and ours. The same Postfix breaks
 * what Mail::DKIM, dkimpy and OpenDKIM sign, and explain says how.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatKeyRecord, parsePrivateKey, verifyMessage } from '../src/dkim/index.js';
import { explainMessage } from '../src/dkim/explain.js';
import { cli } from './helpers/cli.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { eventually } from './helpers/eventually.js';
import { zoneLookup } from './helpers/fixtures.js';
import * as peers from './helpers/peers.js';
import { freeTcpPort } from './helpers/ports.js';
import { postfixUnavailable, startPostfix, type Postfix } from './helpers/postfix.js';
import { send, startProxy, type RunningProxy } from './helpers/proxy.js';
import { startSink, type Sink } from './helpers/sink.js';

const skip = postfixUnavailable();
const D = 'example.com';
const head = (subject: string, mime: string[]): string =>
  ['From: Alice <alice@example.com>', 'To: x@example.org', `Subject: ${subject}`, 'Date: Tue, 01 Dec 2026 12:00:00 +0000', `Message-ID: <${subject.replace(/\W+/g, '-')}@example.com>`, ...mime, '', ''].join('\r\n');
const EIGHT_BIT = (subject: string): Buffer => Buffer.from(head(subject, ['MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit']) + 'Grüße aus Köln.\r\nSchöne Grüße — 東京\r\n', 'utf8');
const LONG_LINE = (subject: string): Buffer => Buffer.from(head(subject, ['MIME-Version: 1.0', 'Content-Type: text/plain; charset=us-ascii']) + `A line of 1500 octets follows.\r\n${'0123456789'.repeat(150)}\r\nend\r\n`, 'latin1');

describe('through a Postfix that downgrades 8-bit mail and breaks long lines', { skip }, () => {
  let dir: string;
  let sink: Sink;
  let postfix: Postfix;
  let dns: TestDns;
  let preserve: RunningProxy;
  let sevenBit: RunningProxy;
  let smtpd: number;
  let keyFile: string;
  let keysFile: string;
  const zone = new Map<string, string[]>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-transit-'));
    sink = await startSink();
    smtpd = await freeTcpPort();
    postfix = await startPostfix({
      masterCf: `127.0.0.1:${smtpd} inet n - n - - smtpd\nsmtp unix - - n - - smtp\n`,
      mainCf: [
        'default_transport = smtp',
        'relay_transport = smtp',
        `relayhost = [127.0.0.1]:${sink.port}`,
        'relay_domains = example.org',
        // The next server, as this Postfix sees it, offers neither: 8-bit MIME parts are downgraded.
        'smtp_discard_ehlo_keywords = silent-discard, 8bitmime, smtputf8',
        'smtp_tls_security_level = none',
      ].join('\n'),
      domains: ['example.net'],
      mailboxes: ['bob@example.net'],
    });
    const toml = (encoding: string, key = ''): string => `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${smtpd}"\ntransport_encoding = "${encoding}"\n\n[domain."${D}"]\nselector = "s1"\n${key}`;
    preserve = await startProxy('out', toml('preserve'), [{ domain: D, selector: 's1' }]);
    keyFile = join(preserve.dir.dir, 'keys', D, 's1.key');
    // The same key for both proxies, so one record serves.
    sevenBit = await startProxy('out', toml('7bit', `key_file = "${keyFile}"\n`));
    const parsed = parsePrivateKey(readFileSync(keyFile));
    assert.ok(parsed.ok);
    zone.set(`s1._domainkey.${D}`, [formatKeyRecord(parsed.key.key)]);
    keysFile = join(dir, 'test-public-keys.txt');
    writeFileSync(keysFile, `s1._domainkey.${D} ${formatKeyRecord(parsed.key.key)}\n`);
    dns = await startDnsmasq(zone, [D]);
  });

  after(async () => {
    await preserve?.stop();
    await sevenBit?.stop();
    await postfix?.stop();
    await sink?.stop();
    await dns?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const arrived = (subject: string): Promise<Buffer> =>
    eventually(`"${subject}" at the far side of Postfix`, () => sink.messages.find((m) => m.data.includes(Buffer.from(`Subject: ${subject}\r\n`)))?.data, { timeoutMs: 30_000, everyMs: 50, detail: () => postfix.maillog() });

  /** Every verifier's results for `message`: ours, Mail::DKIM, dkimpy and OpenDKIM. */
  async function everyone(message: Buffer, name: string): Promise<Record<string, string[]>> {
    const file = join(dir, `${name}.eml`);
    writeFileSync(file, message);
    return {
      ours: (await verifyMessage(message, zoneLookup(zone), Math.floor(Date.now() / 1000))).map((o) => o.result),
      'Mail::DKIM': (await peers.mailDkimVerify([file], dns.port)).map((r) => r.result),
      dkimpy: (await peers.dkimpyVerify([file], dns.port)).map((r) => r.result),
      OpenDKIM: (await peers.openDkimVerify(file, dir, keysFile)).map((r) => r.result),
    };
  }
  const all = (result: string): Record<string, string[]> => ({ ours: [result], 'Mail::DKIM': [result], dkimpy: [result], OpenDKIM: [result] });

  /** What `out` sent, rebuilt: its DKIM-Signature (from the copy that arrived) on top of the client's message. */
  const asSent = (got: Buffer, client: Buffer): Buffer => {
    const text = got.toString('latin1');
    const m = /^DKIM-Signature:[^\r]*\r\n(?:[ \t][^\r]*\r\n)*/m.exec(text);
    assert.ok(m, 'a DKIM-Signature arrived');
    return Buffer.concat([Buffer.from(m[0], 'latin1'), client]);
  };

  for (const [shape, make, change] of [
    ['8-bit text', EIGHT_BIT, '8bit-reencoded'],
    ['a 1500-octet line', LONG_LINE, 'line-wrapped'],
  ] as const) {
    it(`${shape}: "preserve" arrives broken (${change}); "7bit" arrives verifiable everywhere`, async (t) => {
      const broken = make(`${shape} preserved`);
      assert.equal((await send(preserve.port, 'alice@example.com', ['x@example.org'], broken, ' BODY=8BITMIME')).data?.[0]?.code, 250);
      const gotBroken = await arrived(`${shape} preserved`);
      assert.deepEqual(await everyone(gotBroken, `${shape}-preserved`), all('fail'), 'Postfix changed the body under the signature');
      const [e] = await explainMessage(gotBroken, zoneLookup(zone), Math.floor(Date.now() / 1000), asSent(gotBroken, broken));
      assert.equal(e!.cause, 'body-changed');
      assert.deepEqual(e!.changes!.map((c) => c.kind).filter((k) => k !== 'header-modified'), [change], JSON.stringify(e!.changes));
      if (change === '8bit-reencoded') assert.deepEqual(e!.changes!.filter((c) => c.kind === 'header-modified').map((c) => c.where), ['Content-Transfer-Encoding']);
      // The command, on the copy Postfix delivered: what a postmaster sees.
      const brokenFile = join(dir, `${shape}-arrived.eml`.replace(/\W+/g, '-'));
      const sentFile = join(dir, `${shape}-sent.eml`.replace(/\W+/g, '-'));
      writeFileSync(brokenFile, gotBroken);
      writeFileSync(sentFile, asSent(gotBroken, broken));
      const shown = await cli(['explain', brokenFile, '--original', sentFile, '--dns-server', dns.server]);
      assert.equal(shown.code, 1);
      assert.match(shown.stdout, new RegExp(`^body-changed .*\\n[\\s\\S]*since it was sent:\\n +${change} `, 'm'));
      for (const line of [`dkim-proxy explain (${shape}, preserved) --original:`, ...Buffer.from(shown.stdout, 'latin1').toString('utf8').trimEnd().split('\n')]) t.diagnostic(line);

      const kept = make(`${shape} converted`);
      assert.equal((await send(sevenBit.port, 'alice@example.com', ['x@example.org'], kept, ' BODY=8BITMIME')).data?.[0]?.code, 250);
      assert.deepEqual(await everyone(await arrived(`${shape} converted`), `${shape}-converted`), all('pass'));
      const relayed = sevenBit.logs.find((l) => l['msg'] === 'message relayed' && JSON.stringify(l).includes(`${shape} converted`.replace(/\W+/g, '-')));
      assert.ok(relayed?.['reencoded'], 'the conversion is in the log line');
    });
  }

  it('what Mail::DKIM, dkimpy and OpenDKIM sign, Postfix breaks the same way, and explain names the change', async () => {
    for (const [shape, make, change] of [
      ['8-bit text', EIGHT_BIT, '8bit-reencoded'],
      ['a 1500-octet line', LONG_LINE, 'line-wrapped'],
    ] as const) {
      for (const signer of ['Mail::DKIM', 'dkimpy', 'OpenDKIM'] as const) {
        const subject = `${shape} signed by ${signer}`;
        const message = make(subject);
        const file = join(dir, `${signer}-${shape}.eml`.replace(/\W+/g, '-'));
        writeFileSync(file, message);
        const field =
          signer === 'Mail::DKIM'
            ? await peers.mailDkimSign(file, keyFile, D, 's1', 'relaxed/relaxed')
            : signer === 'dkimpy'
              ? await peers.dkimpySign(file, keyFile, D, 's1', 'relaxed/relaxed', 'rsa-sha256')
              : await peers.openDkimSign(file, dir, keyFile, D, 's1', 'relaxed/relaxed');
        const signed = Buffer.concat([Buffer.from(peers.asHeaderField(field), 'latin1'), message]);
        // Straight into Postfix: no dkim-proxy on this path.
        assert.equal((await send(smtpd, 'alice@example.com', ['x@example.org'], signed, ' BODY=8BITMIME')).data?.[0]?.code, 250);
        const got = await arrived(subject);
        const [e] = await explainMessage(got, zoneLookup(zone), Math.floor(Date.now() / 1000), signed);
        assert.equal(e!.cause, 'body-changed', subject);
        assert.ok(e!.changes!.some((c) => c.kind === change), `${subject}: ${JSON.stringify(e!.changes)}`);
      }
    }
  });
});
