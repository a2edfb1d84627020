/**
 * ARC through the proxies, over real sockets with keys and policies from
 * dnsmasq: a mailing list's site runs `in` (sealing at receipt) and `out`
 * (sealing on the way out, after the list changed the message); the final
 * copy fails DKIM for the author but passes ARC in dkimpy, Mail::DKIM and
 * mailauth, and a receiving `in` that trusts the list turns DMARC's reject
 * into disposition none, while one that does not refuses it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatKeyRecord, verifyMessage } from '../src/dkim/index.js';
import { createKeyLookup } from '../src/dns/resolver.js';
import { listChanges } from './helpers/arc.js';
import { peerArcResults, PEERS } from './helpers/arc-peers.js';
import { dkimpyVerify, mailDkimVerify } from './helpers/peers.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { sign, SAMPLE, zone as keyZone } from './helpers/engine.js';
import { client, startProxy, type RunningProxy } from './helpers/proxy.js';
import { startSink, type Sink } from './helpers/sink.js';
import type { Reply } from '../src/relay/client.js';
import { testKey } from './helpers/test-keys.js';

let dir: string;
let dns: TestDns;
let listKeyFile: string;
let listDkimKeyFile: string;
const sinks: Sink[] = [];
const proxies: RunningProxy[] = [];

const LIST = 'lists.example.org';
const LIST_ID = 'mx.lists.example.org';

async function sendVia(port: number, addr: string, from: string, message: Buffer): Promise<Reply[] | undefined> {
  const c = await client(port);
  try {
    assert.equal((await c.command(`XFORWARD ADDR=${addr} HELO=${from.split('@')[1]}`)).code, 250);
    const mail = await c.command(`MAIL FROM:<${from}>`);
    const rcpt = await c.command('RCPT TO:<bob@example.net>');
    return mail.code === 250 && rcpt.code === 250 ? await c.data([message], 1) : undefined;
  } finally {
    await c.quit();
  }
}

const dnsToml = (): string => `[dns]\nservers = ["${dns.server}"]\ntimeout_ms = 2000\n`;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-arc-proxy-'));
  const { pem, key } = testKey('rsa-2048');
  listKeyFile = join(dir, 'lists.arc.test-key.pem');
  writeFileSync(listKeyFile, pem, { mode: 0o600 });
  const dkim = testKey('rsa-2048');
  listDkimKeyFile = join(dir, 'lists.dk.test-key.pem');
  writeFileSync(listDkimKeyFile, dkim.pem, { mode: 0o600 });
  dns = await startDnsmasq(
    new Map([
      ...keyZone,
      [`arc._domainkey.${LIST}`, [formatKeyRecord(key)]],
      [`dk._domainkey.${LIST}`, [formatKeyRecord(dkim.key)]],
      ['_dmarc.example.com', ['v=DMARC1; p=reject']],
      ['example.com', ['v=spf1 ip4:192.0.2.0/24 -all']],
      [LIST, ['v=spf1 ip4:198.51.100.0/24 -all']],
    ]),
    ['example.com', 'example.org', 'example.net'],
  );
  for (let k = 0; k < 4; k++) sinks.push(await startSink());
});

after(async () => {
  for (const p of proxies) await p.stop();
  for (const s of sinks) await s.stop();
  await dns?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('ARC through in and out: a mailing list between author and receiver', () => {
  let listIn: RunningProxy;
  let listOut: RunningProxy;
  let trusting: RunningProxy;
  let strict: RunningProxy;
  const arc = (): string => `[arc]\ndomain = "${LIST}"\nselector = "arc"\nkey_file = "${listKeyFile}"\nauthserv_id = "${LIST_ID}"\n`;

  before(async () => {
    const [toList, fromList, toReceiver] = sinks as [Sink, Sink, Sink];
    listIn = await startProxy('in', `[in]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${toList.port}"\nauthserv_id = "${LIST_ID}"\nhostname = "${LIST_ID}"\narc_seal = true\n\n${arc()}\n${dnsToml()}`);
    listOut = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${fromList.port}"\narc_seal = true\n\n${arc()}\n${dnsToml()}`);
    const receiver = (extra: string): string =>
      `[in]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${toReceiver.port}"\nauthserv_id = "mx.example.net"\nhostname = "mx.example.net"\nreject_fail = true\n${extra}\n${dnsToml()}`;
    trusting = await startProxy('in', receiver(`arc_trusted_sealers = ["${LIST}"]\n`));
    strict = await startProxy('in', receiver(''));
    proxies.push(listIn, listOut, trusting, strict);
  });

  it('the list seals at receipt and on the way out; the final copy fails the author\'s DKIM but passes ARC everywhere; a trusting receiver overrides DMARC, a strict one refuses', async () => {
    const [toList, fromList, toReceiver] = sinks as [Sink, Sink, Sink];
    // The author's server (192.0.2.10, in example.com's SPF) sends to the list.
    const received = await sendVia(listIn.port, '192.0.2.10', 'alice@example.com', sign(SAMPLE));
    assert.equal(received?.[0]?.code, 250, JSON.stringify(received));
    const atList = toList.messages[0]!.data;
    assert.match(atList.toString('latin1'), /^ARC-Seal: i=1; cv=none; a=rsa-sha256; d=lists\.example\.org; s=arc;/);
    assert.match(atList.toString('latin1'), /^ARC-Authentication-Results: i=1; mx\.lists\.example\.org;\r\n\tspf=pass [^]*?\tdmarc=pass [^]*?\tarc=none\r\n/m);

    // The list software tags the Subject and adds a footer, then mails it out through out.
    const sent = await sendVia(listOut.port, '127.0.0.1', `list-bounces@${LIST}`, listChanges(atList));
    assert.equal(sent?.[0]?.code, 250, JSON.stringify(sent));
    const final = fromList.messages[0]!.data;
    const text = final.toString('latin1');
    assert.match(text, /^ARC-Seal: i=2; cv=pass; a=rsa-sha256; d=lists\.example\.org; s=arc;/);
    assert.deepEqual(listOut.logs.find((l) => l['arcSealed'])?.['arcSealed'], { instance: 2, cv: 'pass' });
    assert.deepEqual(listIn.logs.find((l) => l['arcSealed'])?.['arcSealed'], { instance: 1, cv: 'none' });

    const dkim = await verifyMessage(final, createKeyLookup({ servers: [dns.server] }), Math.floor(Date.now() / 1000));
    assert.deepEqual(dkim.map((o) => [o.sig.d, o.result]), [['example.com', 'fail']]);
    const file = join(dir, 'final.eml');
    writeFileSync(file, final);
    const peers = await peerArcResults([file], dns);
    for (const p of PEERS) assert.equal(peers[p]?.[0], 'pass', `${p}: ${JSON.stringify(peers)}`);

    // The receiver: the list's server (198.51.100.7, in lists.example.org's SPF) delivers.
    const accepted = await sendVia(trusting.port, '198.51.100.7', `list-bounces@${LIST}`, final);
    assert.equal(accepted?.[0]?.code, 250, JSON.stringify(accepted));
    const delivered = toReceiver.messages[0]!.data.toString('latin1');
    assert.match(delivered, /^Authentication-Results: mx\.example\.net;\r\n\tspf=pass smtp\.mailfrom=list-bounces@lists\.example\.org [^;]*;\r\n\tdkim=fail [^;]*header\.d=example\.com[^;]*;\r\n\tdmarc=fail \(p=reject dis=none; override=trusted_forwarder: ARC sealed by lists\.example\.org, which saw dmarc=pass\) header\.from=example\.com;\r\n\tarc=pass \(i=2 sealed by lists\.example\.org\) header\.oldest-pass=2 smtp\.remote-ip=198\.51\.100\.7\r\n/);
    const logged = trusting.logs.find((l) => l['dmarc'] !== undefined)?.['dmarc'] as Record<string, unknown>;
    assert.equal(logged['override'], 'trusted_forwarder');

    const refused = await sendVia(strict.port, '198.51.100.7', `list-bounces@${LIST}`, final);
    assert.equal(refused?.[0]?.code, 550, JSON.stringify(refused));
    assert.equal(refused![0]!.enhanced, '5.7.1');
    assert.match(refused![0]!.lines.join(' '), /DMARC policy of example\.com is reject/);
    assert.equal(toReceiver.messages.length, 1);
  });

  it('out signs and seals: the DKIM-Signature first, the ARC set on top of it, its AMS covering the signature; both verify everywhere', async () => {
    const sink = sinks[3]!;
    const both = await startProxy(
      'out',
      `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\narc_seal = true\n\n[signing]\nadditional_signatures = ["list"]\n\n[signature."list"]\ndomain = "${LIST}"\nselector = "dk"\nkey_file = "${listDkimKeyFile}"\n\n${arc()}\n${dnsToml()}`,
    );
    proxies.push(both);
    const message = Buffer.from(`Authentication-Results: ${LIST_ID}; dkim=pass header.d=example.com; dmarc=pass header.from=example.com; arc=none\r\n${SAMPLE}`, 'latin1');
    const sent = await sendVia(both.port, '127.0.0.1', `list-bounces@${LIST}`, message);
    assert.equal(sent?.[0]?.code, 250, JSON.stringify(sent));
    const final = sink.messages[0]!.data;
    const names = final.toString('latin1').split(/\r\n(?![ \t])/).slice(0, 5).map((f) => f.slice(0, f.indexOf(':')));
    assert.deepEqual(names, ['ARC-Seal', 'ARC-Message-Signature', 'ARC-Authentication-Results', 'DKIM-Signature', 'Authentication-Results']);
    assert.match(final.toString('latin1').split(/\r\n(?![ \t])/)[1]!.replace(/\r\n\t/g, ''), /h=[^;]*:DKIM-Signature[;:]/);
    const file = join(dir, 'signed-and-sealed.eml');
    writeFileSync(file, final);
    const dkim = await verifyMessage(final, createKeyLookup({ servers: [dns.server] }), Math.floor(Date.now() / 1000));
    assert.deepEqual(dkim.map((o) => [o.sig.d, o.result]), [[LIST, 'pass']]);
    for (const r of [...(await mailDkimVerify([file], dns.port)), ...(await dkimpyVerify([file], dns.port))]) assert.equal(r.result, 'pass', JSON.stringify(r));
    const peers = await peerArcResults([file], dns);
    for (const p of PEERS) assert.equal(peers[p]?.[0], 'pass', `${p}: ${JSON.stringify(peers)}`);
  });
});
