import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatKeyRecord, parseHeaderBlock, parsePrivateKey, type KeyAnswer } from '../dkim/index.js';
import { PreparedSealer } from '../arc/seal.js';
import { listChanges, seal, withResults } from '../../test/helpers/arc.js';
import { NOW, SAMPLE, sign, zone as engineZone } from '../../test/helpers/engine.js';
import type { Envelope } from './message.js';
import { MESSAGES } from '../../test/helpers/messages.js';
import { zoneDns } from '../../test/helpers/spf-zone.js';
import { processMessage } from './offline.js';
import { VerifyingProcessor, type VerifySettings } from './verify.js';
import { testKey } from '../../test/helpers/test-keys.js';

const settings: VerifySettings = {
  authservId: 'mx.test',
  maxSignatures: 10,
  allowSha1: false,
  allowShortKeys: false,
  checks: ['dkim'],
  hostname: 'mx.test',
  receivedSpf: false,
  rejectFail: false,
  rejectError: false,
  xDkimAuthenticationResults: false,
};
const noDns = zoneDns({});

describe('the verifying processor', () => {
  it('a lookup that throws is a fault of finish(), never an unhandled rejection, also when finish() is never called', async () => {
    const signed = sign(MESSAGES['plain']!);
    const failing = new VerifyingProcessor({ settings: () => settings, lookup: () => Promise.reject(new Error('resolver bug')), now: () => 1_790_000_000, dns: noDns });
    await assert.rejects(processMessage(failing, signed), /resolver bug/);
    // Started, then abandoned (a message refused for its size, say): the process must go on.
    const head = signed.subarray(0, signed.indexOf('\r\n\r\n') + 2);
    await failing.start({ block: head, fields: parseHeaderBlock(head.toString('latin1')) }, { clientAddress: undefined, helo: undefined, mailFrom: '', rcptTo: [] });
    await new Promise((r) => setImmediate(r));
  });

  it('removes Authentication-Results claiming our authserv-id, keeps others, and writes one field with a result per signature', async () => {
    const forged = Buffer.from(
      `Authentication-Results: mx.test; dkim=pass header.d=example.com\r\nAuthentication-Results: (a (nested) comment) MX.test (ours); spf=pass\r\nAuthentication-Results: other.test; dkim=fail\r\n${MESSAGES['plain']!}`,
      'latin1',
    );
    const p = new VerifyingProcessor({ settings: () => settings, lookup: () => Promise.resolve({ kind: 'nxdomain' }), now: () => 1_790_000_000, dns: noDns });
    const r = await processMessage(p, sign(forged));
    assert.equal(r.report.forgedRemoved, 2);
    assert.doesNotMatch(r.headerBlock.toString('latin1'), /mx\.test; dkim=pass/);
    assert.match(r.headerBlock.toString('latin1'), /other\.test; dkim=fail/);
    assert.match(r.prepend.toString('latin1'), /^Authentication-Results: mx\.test;\r\n\tdkim=permerror \(key-missing\) reason="no key/);
  });
});

describe('the verifying processor with SPF and DMARC', () => {
  const all: VerifySettings = { ...settings, checks: ['dkim', 'spf', 'dmarc'] };
  const zone = {
    txt: {
      'example.com': ['v=spf1 ip4:192.0.2.0/24 -all'],
      '_dmarc.example.com': ['v=DMARC1; p=reject'],
      'bounces.example.net': ['v=spf1 ip4:198.51.100.7 -all'],
    },
    timeout: ['slow.example'],
  };
  const keys = (name: string) => Promise.resolve(engineZone.has(name) ? { kind: 'found' as const, records: engineZone.get(name)! } : { kind: 'nxdomain' as const });
  const run = (s: VerifySettings, message: Buffer, envelope: Envelope, dns = zoneDns(zone)) =>
    processMessage(new VerifyingProcessor({ settings: () => s, lookup: keys, now: () => NOW, dns, random: () => 0.5 }), message, envelope);
  const env = (ip: string, mailFrom: string, helo = 'mail.example.com'): Envelope => ({ clientAddress: ip, helo, mailFrom, rcptTo: ['bob@example.net'] });

  it('one Authentication-Results with spf=, dkim= and dmarc=, in that order', async () => {
    const r = await run(all, sign(SAMPLE), env('192.0.2.10', 'alice@example.com'));
    const ar = r.prepend.toString('latin1');
    assert.match(ar, /^Authentication-Results: mx\.test;\r\n\tspf=pass smtp\.mailfrom=alice@example\.com \(example\.com: matched ip4:192\.0\.2\.0\/24\);\r\n\tdkim=pass header\.d=example\.com [^;]+;\r\n\tdmarc=pass \(p=reject dis=none\) header\.from=example\.com\r\n$/);
    assert.deepEqual(r.report.verdict, { action: 'accept' });
    assert.equal(r.refusal, undefined);
  });

  it('a null sender is checked as postmaster@HELO (smtp.helo), and DMARC aligns the HELO domain', async () => {
    const r = await run(all, Buffer.from(SAMPLE, 'latin1'), env('192.0.2.10', '', 'example.com'));
    assert.equal(r.report.spf?.identity, 'helo');
    assert.match(r.report.authenticationResults, /spf=pass smtp\.helo=example\.com \([^)]*\);/);
    assert.equal(r.report.dmarc?.result, 'pass');
    assert.equal(r.report.dmarc?.aligned.spf, 'example.com');
  });

  it('reject_fail: a DMARC fail under p=reject is refused with 550 5.7.1; off, it is only reported', async () => {
    const unsigned = Buffer.from(SAMPLE, 'latin1');
    const reported = await run(all, unsigned, env('203.0.113.9', 'alice@example.com'));
    assert.equal(reported.report.dmarc?.result, 'fail');
    assert.match(reported.report.authenticationResults, /spf=fail .*\r\n\tdkim=none;\r\n\tdmarc=fail \(p=reject dis=reject\) header\.from=example\.com/);
    assert.equal(reported.refusal, undefined);
    const refused = await run({ ...all, rejectFail: true }, unsigned, env('203.0.113.9', 'alice@example.com'));
    assert.equal(refused.refusal?.responseCode, 550);
    assert.equal(refused.refusal?.enhanced, '5.7.1');
    assert.match(refused.refusal?.text ?? '', /DMARC policy of example\.com is reject/);
    // Aligned DKIM rescues it even with reject_fail on.
    const signed = await run({ ...all, rejectFail: true }, sign(SAMPLE), env('203.0.113.9', 'alice@example.com'));
    assert.equal(signed.refusal, undefined);
  });

  it('reject_error: an SPF temperror that leaves DMARC failing defers with 451 4.7.24; a permerror never does', async () => {
    const from = (d: string) => Buffer.from(SAMPLE.replace('alice@example.com>', `alice@${d}>`), 'latin1');
    const deferred = await run({ ...all, rejectError: true }, from('example.com'), env('203.0.113.9', 'x@slow.example'));
    assert.equal(deferred.report.spf?.result, 'temperror');
    assert.equal(deferred.refusal?.responseCode, 451);
    assert.equal(deferred.refusal?.enhanced, '4.7.24');
    const reportOnly = await run(all, from('example.com'), env('203.0.113.9', 'x@slow.example'));
    assert.equal(reportOnly.refusal, undefined);
    const permerror = await run({ ...all, rejectError: true }, from('example.com'), env('203.0.113.9', 'x@bad.example'), zoneDns({ txt: { ...zone.txt, 'bad.example': ['v=spf1 ipp4:1.2.3.4'] } }));
    assert.equal(permerror.report.spf?.result, 'permerror');
    assert.equal(permerror.refusal, undefined);
  });

  it('a DMARC record that times out is dmarc=temperror, deferred under reject_error', async () => {
    const dns = zoneDns({ ...zone, timeout: ['_dmarc.example.com'] });
    const r = await run({ ...all, rejectError: true }, sign(SAMPLE), env('192.0.2.10', 'alice@example.com'), dns);
    assert.equal(r.report.dmarc?.result, 'temperror');
    assert.equal(r.refusal?.enhanced, '4.7.0');
  });

  it('reject_error without DMARC: a DKIM key temperror with nothing that passed defers; with an SPF pass it does not', async () => {
    const dkimOnly: VerifySettings = { ...all, checks: ['dkim', 'spf'], rejectError: true };
    const failingKeys = () => Promise.resolve({ kind: 'temperror' as const, reason: 'dns timeout' as const, detail: 'no answer' });
    const runWith = (envelope: Envelope) =>
      processMessage(new VerifyingProcessor({ settings: () => dkimOnly, lookup: failingKeys, now: () => NOW, dns: zoneDns(zone) }), sign(SAMPLE), envelope);
    const deferred = await runWith(env('203.0.113.9', 'alice@example.com'));
    assert.equal(deferred.report.spf?.result, 'fail');
    assert.equal(deferred.refusal?.responseCode, 451);
    assert.equal(deferred.refusal?.enhanced, '4.7.0');
    assert.match(deferred.refusal?.text ?? '', /DKIM d=example\.com/);
    const accepted = await runWith(env('192.0.2.10', 'alice@example.com'));
    assert.equal(accepted.report.spf?.result, 'pass');
    assert.equal(accepted.refusal, undefined);
  });

  it('XFORWARD ADDR=[UNAVAILABLE]: SPF is none, not a check of the socket peer', async () => {
    const r = await run(all, sign(SAMPLE), { ...env('127.0.0.1', 'alice@example.com'), clientAddressUnavailable: true });
    assert.equal(r.report.spf?.result, 'none');
    assert.match(r.report.spf?.reason ?? '', /UNAVAILABLE/);
    const odd = await run(all, sign(SAMPLE), env('not-an-address', 'alice@example.com'));
    assert.equal(odd.report.spf?.result, 'none');
    assert.match(odd.report.spf?.reason ?? '', /"not-an-address" is not an IP address/);
  });

  it('an IPv4-mapped IPv6 client is checked as IPv4', async () => {
    const r = await run(all, sign(SAMPLE), env('::ffff:192.0.2.10', 'alice@example.com'));
    assert.equal(r.report.spf?.result, 'pass');
  });

  it('Received-SPF and X-DKIM-Authentication-Results when asked for', async () => {
    const r = await run({ ...all, receivedSpf: true, xDkimAuthenticationResults: true }, sign(SAMPLE), env('192.0.2.10', 'alice@example.com'));
    const text = r.prepend.toString('latin1');
    assert.match(text, /\r\nReceived-SPF: pass \(mx\.test: example\.com: matched ip4:192\.0\.2\.0\/24\)\r\n\tclient-ip=192\.0\.2\.10;\r\n\tenvelope-from=alice@example\.com;\r\n\thelo=mail\.example\.com;\r\n\tmechanism=ip4:192\.0\.2\.0\/24;\r\n\treceiver=mx\.test;\r\n\tidentity=mailfrom;\r\n/);
    assert.match(text, /\r\nX-DKIM-Authentication-Results: pass\r\n$/);
  });

  it('spf_mailfrom = "domain" writes only the MAIL FROM domain in smtp.mailfrom (what OpenDMARC 1.4 reads)', async () => {
    const r = await run({ ...all, spfMailfrom: 'domain' }, sign(SAMPLE), env('192.0.2.10', 'alice@example.com'));
    assert.match(r.report.authenticationResults, /\tspf=pass smtp\.mailfrom=example\.com \(example\.com: matched ip4:192\.0\.2\.0\/24\);/);
  });

  it('checks = ["dkim"]: no SPF or DMARC lookups at all', async () => {
    const asked: string[] = [];
    const r = await run(settings, sign(SAMPLE), env('192.0.2.10', 'alice@example.com'), zoneDns(zone, asked));
    assert.equal(r.report.spf, undefined);
    assert.equal(r.report.dmarc, undefined);
    assert.deepEqual(asked, []);
  });
});

describe('the verifying processor with ARC', () => {
  const listKey = (() => {
    const r = parsePrivateKey(testKey('rsa-2048').pem);
    assert.ok(r.ok);
    return r.key;
  })();
  const list = PreparedSealer.prepare({ domain: 'lists.example.org', selector: 'arc', key: listKey, authservId: 'mx.lists.example.org' });
  const zone = { txt: { '_dmarc.example.com': ['v=DMARC1; p=reject'], 'lists.example.org': ['v=spf1 ip4:198.51.100.0/24 -all'] } };
  const keyRecords = new Map([...engineZone, ['arc._domainkey.lists.example.org', [formatKeyRecord(listKey.key)]]]);
  const keys = (name: string) => Promise.resolve(keyRecords.has(name) ? { kind: 'found' as const, records: keyRecords.get(name)! } : { kind: 'nxdomain' as const });
  const all: VerifySettings = { ...settings, checks: ['dkim', 'spf', 'dmarc', 'arc'], rejectFail: true, rejectError: true };
  const fromList: Envelope = { clientAddress: '198.51.100.7', helo: 'lists.example.org', mailFrom: 'list-bounces@lists.example.org', rcptTo: ['bob@example.net'] };
  const run = (s: VerifySettings, message: Buffer, lookup: (name: string) => Promise<KeyAnswer> = keys) =>
    processMessage(new VerifyingProcessor({ settings: () => s, lookup, now: () => NOW, dns: zoneDns(zone) }), message, fromList);

  /** Signed by example.com (p=reject), received by the list (its A-R saw DKIM and DMARC pass), changed by the list, sealed. */
  const forwarded = (aar = 'dkim=pass header.d=example.com; dmarc=pass header.from=example.com; arc=none'): Buffer =>
    seal(listChanges(withResults(sign(SAMPLE), 'mx.lists.example.org', aar)), list, NOW);

  it('a list breaks DKIM: DMARC fails and reject_fail refuses, unless the list is a trusted sealer', async () => {
    const untrusted = await run(all, forwarded());
    assert.equal(untrusted.report.arc?.result, 'pass');
    assert.equal(untrusted.report.dmarc?.result, 'fail');
    assert.equal(untrusted.report.dmarc?.disposition, 'reject');
    assert.equal(untrusted.report.verdict.action, 'reject');

    const trusted = await run({ ...all, arcTrustedSealers: ['lists.example.org'] }, forwarded());
    assert.equal(trusted.report.dmarc?.result, 'fail');
    assert.equal(trusted.report.dmarc?.disposition, 'none');
    assert.deepEqual(trusted.report.verdict, { action: 'accept' });
    const ar = trusted.prepend.toString('latin1');
    assert.match(ar, /\tdmarc=fail \(p=reject dis=none; override=trusted_forwarder: ARC sealed by lists\.example\.org, which saw dmarc=pass\) header\.from=example\.com;\r\n/);
    assert.match(ar, /\tarc=pass \(i=1 sealed by lists\.example\.org\) header\.oldest-pass=1 smtp\.remote-ip=198\.51\.100\.7\r\n$/);
  });

  it('the override needs what the sealer saw to vouch for the From domain, and a chain that passes', async () => {
    const trusting: VerifySettings = { ...all, arcTrustedSealers: ['example.org'] };
    const aligned = await run(trusting, forwarded('spf=fail smtp.mailfrom=a@example.com; dkim=pass header.d=mail.example.com'));
    assert.equal(aligned.report.dmarc?.disposition, 'none');
    assert.equal(aligned.report.dmarc?.override?.vouch, 'dkim=pass header.d=mail.example.com');
    for (const aar of ['dkim=pass header.d=other.example; dmarc=fail header.from=example.com', 'dmarc=pass header.from=other.example', 'spf=pass smtp.mailfrom=x@lists.example.org']) {
      const r = await run(trusting, forwarded(aar));
      assert.equal(r.report.dmarc?.disposition, 'reject', aar);
      assert.equal(r.report.verdict.action, 'reject', aar);
    }
    const broken = await run(trusting, Buffer.concat([forwarded(), Buffer.from('tampered\r\n')]));
    assert.equal(broken.report.arc?.result, 'fail');
    assert.equal(broken.report.dmarc?.disposition, 'reject');
  });

  it('reject_error defers when a trusted sealer\'s key could not be looked up and DMARC failed', async () => {
    const temp = (name: string): Promise<KeyAnswer> => (name.startsWith('arc._domainkey.') ? Promise.resolve({ kind: 'temperror', reason: 'dns timeout' }) : keys(name));
    const r = await run({ ...all, arcTrustedSealers: ['lists.example.org'] }, forwarded(), temp);
    assert.equal(r.report.arc?.result, 'fail');
    assert.equal(r.report.verdict.action, 'defer');
    const untrusted = await run(all, forwarded(), temp);
    assert.equal(untrusted.report.verdict.action, 'reject');
  });

  it('[in] arc_seal: seals what it delivers with the results it wrote, and a chain it cannot extend goes on unsealed', async () => {
    const p = new VerifyingProcessor({ settings: () => ({ ...all, rejectFail: false, authservId: 'mx.lists.example.org' }), lookup: keys, now: () => NOW, dns: zoneDns(zone), sealer: () => list });
    const r = await processMessage(p, sign(SAMPLE), fromList);
    assert.deepEqual(r.report.sealed, { instance: 1, cv: 'none' });
    const delivered = Buffer.concat([r.prepend, r.headerBlock, Buffer.from('\r\n'), r.body]);
    const fields = parseHeaderBlock(delivered.toString('latin1', 0, delivered.indexOf('\r\n\r\n') + 2));
    assert.deepEqual(fields.slice(0, 4).map((f) => f.name), ['ARC-Seal', 'ARC-Message-Signature', 'ARC-Authentication-Results', 'Authentication-Results']);
    assert.match(fields[2]!.raw, /^ARC-Authentication-Results: i=1; mx\.lists\.example\.org;\r\n\tspf=pass [^]*\tarc=none\r\n$/);
    const again = await run({ ...all, rejectFail: false }, delivered);
    assert.equal(again.report.arc?.result, 'pass');

    const failedChain = seal(withResults(sign(SAMPLE), 'mx.lists.example.org', 'arc=fail'), list, NOW);
    const refused = await processMessage(p, failedChain, fromList);
    assert.ok(refused.report.sealed && 'refused' in refused.report.sealed);
    assert.match(refused.report.sealed.refused, /already failed/);
    assert.doesNotMatch(refused.prepend.toString('latin1'), /^ARC-Seal: i=2/m);
  });
});
