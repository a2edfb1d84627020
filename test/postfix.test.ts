/**
 * A real Postfix, both directions, with the README's configuration:
 * submission → content_filter → dkim-proxy out → re-injection → delivery, and
 * smtp → smtpd_proxy_filter → dkim-proxy in → re-injection → delivery.
 * Messages go in with swaks; the delivered copies are checked with Mail::DKIM
 * and our verifier against keys served by dnsmasq; Postfix's log must show the
 * original client (XFORWARD); with dkim-proxy stopped, mail waits in Postfix's
 * queue and is delivered once it is back.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parsePrivateKey, signMessage, verifyMessage } from '../src/dkim/index.js';
import { createKeyLookup } from '../src/dns/resolver.js';
import { makeConfigDir, type ConfigDir } from './helpers/config-dir.js';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { cli } from './helpers/cli.js';
import { mailDkimVerify } from './helpers/peers.js';
import { freeTcpPorts } from './helpers/ports.js';
import { startOpenDmarc, type OpenDmarc } from './helpers/opendmarc.js';
import { mboxMessage, postfixUnavailable, readmeBlock, startPostfix, substitute, type Postfix } from './helpers/postfix.js';
import { eventually } from './helpers/eventually.js';
import { send } from './helpers/proxy.js';
import { untilGreeting } from './helpers/raw-client.js';

const run = promisify(execFile);
const skip = postfixUnavailable();

/** Three From domains under example.com, one per DMARC policy; their SPF records allow 127.0.0.2 only. */
const POLICIES = ['none', 'quarantine', 'reject'] as const;
const policyDomain = (p: (typeof POLICIES)[number]): string => `p-${p}.example.com`;
/** OpenDMARC asks port 53 of the address in its resolv.conf: one of loopback's own, away from any system resolver. */
const OPENDMARC_DNS = '127.0.0.77';
const DMARC_ZONE = new Map<string, string[]>(POLICIES.flatMap((p) => [[policyDomain(p), ['v=spf1 ip4:127.0.0.2 -all']] as [string, string[]], [`_dmarc.${policyDomain(p)}`, [`v=DMARC1; p=${p}`]] as [string, string[]]]));

/** Submits with swaks; returns Postfix's queue id from its 250 reply. */
async function swaks(port: number, from: string, to: string, args: string[]): Promise<string> {
  const { stdout } = await run('swaks', ['--server', `127.0.0.1:${port}`, '--from', from, '--to', to, '--helo', 'client.example', ...args], { timeout: 30_000 });
  // After a proxy, the reply is the next hop's: to BDAT, Postfix says "Ok: <n> bytes queued as".
  const id = /<-\s+250 [\d.]+ Ok: (?:\d+ bytes )?queued as (\w+)/.exec(stdout)?.[1];
  if (!id) throw new Error(`swaks: no queue id in\n${stdout}`);
  return id;
}

describe('Postfix, both directions, with the README configuration', { skip }, () => {
  let dns: TestDns;
  let opendmarcDns: TestDns;
  let opendmarc: OpenDmarc;
  let postfix: Postfix;
  let config: ConfigDir;
  let daemon: Daemon;
  const ports = new Map<string, number>();
  const verifyOurs = async (message: Buffer): Promise<string[]> => (await verifyMessage(message, createKeyLookup({ servers: [dns.server], timeoutMs: 2000 }), Math.floor(Date.now() / 1000))).map((o) => o.result);

  const startProxy = async (): Promise<Daemon> => {
    const d = startDaemon(config.file, config.dir);
    await d.port('out');
    await d.port('in');
    return d;
  };

  before(async () => {
    const names = ['submission', 'smtp', '10025', '10026', '10027', '10028', 'metrics', 'milter', 'balanced', 'haproxy', 'out2'];
    const free = await freeTcpPorts(names.length);
    names.forEach((name, k) => ports.set(name, free[k]!));
    const p = (name: string): number => ports.get(name)!;
    // 127.0.0.1:10027 and [127.0.0.1]:10027 alike.
    const relayPorts = new Map<string | RegExp, string>(['10025', '10026', '10027', '10028'].map((n) => [new RegExp(`(127\\.0\\.0\\.1\\]?):${n}\\b`, 'g'), `$1:${p(n)}`]));

    // dkim-proxy: the README's file, keys made where it says, DNS pointed at dnsmasq.
    const withPorts = substitute(readmeBlock('dkim-proxy.toml'), new Map([...relayPorts, ['/etc/dkim-proxy/keys/', 'keys/'], ['127.0.0.1:9090', `127.0.0.1:${p('metrics')}`]]));
    config = makeConfigDir(withPorts, [{ domain: 'example.com', selector: 's2026' }]);
    const spool = join(config.dir, 'spool');
    mkdirSync(spool, { mode: 0o700 });
    const toml = substitute(withPorts, new Map([['/var/spool/dkim-proxy', spool]]));
    dns = await startDnsmasq(new Map([...config.records, ...DMARC_ZONE]), ['example.com', 'example.net']);
    // OpenDMARC, a milter on the re-injection smtpd after `in`, trusts our results and asks DNS for the policies itself.
    opendmarcDns = await startDnsmasq(new Map([...config.records, ...DMARC_ZONE]), ['example.com', 'example.net'], { address: OPENDMARC_DNS, port: 53 });
    opendmarc = await startOpenDmarc({ port: p('milter'), dnsAddress: OPENDMARC_DNS, trustedAuthservId: 'mx.example.com', authservId: 'opendmarc.test' });
    writeFileSync(config.file, `${toml}\n[dns]\nservers = ["${dns.server}"]\ntimeout_ms = 2000\n\n[log]\nlevel = "info"\n`);

    const masterCf = substitute(
      readmeBlock('master.cf'),
      new Map<string | RegExp, string>([
        [/^submission inet/m, `127.0.0.1:${p('submission')} inet`],
        [/^smtp      inet/m, `127.0.0.1:${p('smtp')} inet`],
        ['  -o syslog_name=postfix/dkverify-return\n', `  -o syslog_name=postfix/dkverify-return\n  -o smtpd_milters=inet:127.0.0.1:${p('milter')}\n`],
        ...relayPorts,
      ]),
    );
    // A second submission port whose content_filter is a load balancer (HAProxy, send-proxy-v2) in front of another dkim-proxy out.
    const balancedCf = `${masterCf}\n127.0.0.1:${p('balanced')} inet n - n - - smtpd\n  -o syslog_name=postfix/balanced\n  -o content_filter=dksign:[127.0.0.1]:${p('haproxy')}\n  -o receive_override_options=no_address_mappings\n`;
    postfix = await startPostfix({ masterCf: balancedCf, mainCf: readmeBlock('main.cf'), domains: ['example.com', 'example.net'], mailboxes: ['bob@example.net', 'alice@example.com'] });
    daemon = await startProxy();
  });

  after(async () => {
    await daemon?.stop();
    await postfix?.stop();
    await opendmarc?.stop();
    await opendmarcDns?.stop();
    await dns?.stop();
  });

  const logTail = (): string => `Postfix log:\n${postfix.maillog()}\ndkim-proxy log:\n${daemon.lines.map((l) => JSON.stringify(l)).join('\n')}\nOpenDMARC:\n${opendmarc?.output() ?? ''}`;

  it('signs what is submitted: delivered signed, verified by Mail::DKIM and by us, XFORWARD in the log', async () => {
    const subject = 'outbound through Postfix';
    const queueId = await swaks(ports.get('submission')!, 'alice@example.com', 'bob@example.net', ['--header', `Subject: ${subject}`, '--body', 'Signed on its way out.\n.leading dot\n']);
    const delivered = await eventually('the signed message in bob\'s mailbox', () => mboxMessage(postfix.mailbox('bob@example.net'), subject), { timeoutMs: 30_000, everyMs: 50, detail: logTail });

    assert.match(delivered.toString('latin1'), /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.com; s=s2026;/m);
    const file = join(postfix.dir, 'outbound.eml');
    writeFileSync(file, delivered);
    const peer = await mailDkimVerify([file], dns.port);
    assert.deepEqual(peer.map((r) => r.result), ['pass'], JSON.stringify(peer));
    assert.deepEqual(await verifyOurs(delivered), ['pass']);

    // The re-injection smtpd learned the original client and queue id from dkim-proxy's XFORWARD.
    const log = postfix.maillog();
    assert.match(log, new RegExp(`postfix/dksign-return/smtpd\\[\\d+\\]: \\w+: client=localhost\\[127\\.0\\.0\\.1\\], orig_queue_id=${queueId}, orig_client=localhost\\[127\\.0\\.0\\.1\\]`), log);
    const relayed = await daemon.waitFor((l) => l['msg'] === 'message relayed' && l['kind'] === 'out');
    assert.deepEqual(relayed['signatures'], [{ d: 'example.com', s: 's2026', a: 'rsa-sha256' }]);

    // The README's [metrics] is live: ready (both next hops are Postfix), and the message counted.
    const ready = await cli(['health', '--ready', '--config', config.file], undefined, config.dir);
    assert.equal(ready.code, 0, ready.stdout + ready.stderr);
    const stats = JSON.parse((await cli(['stats', '--json', '--config', config.file], undefined, config.dir)).stdout) as { signing: unknown[] };
    assert.deepEqual(stats.signing, [{ domain: 'example.com', result: 'signed', count: 1 }]);
  });

  it('submitted 8-bit SMTPUTF8 mail: delivered, dkim-proxy having made it 7-bit before signing, and verifying', async () => {
    const subject = 'internationalized and 8-bit';
    const message = Buffer.from(
      [`From: Jürgen <jürgen@example.com>`, 'To: bob@example.net', `Subject: ${subject}`, 'Date: Tue, 01 Dec 2026 12:00:00 +0000', '', 'Grüße aus Köln, on its way out.', ''].join('\r\n').replace('\r\n\r\n', '\r\nMessage-ID: <intl@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'),
      'utf8',
    );
    const r = await send(ports.get('submission')!, 'jürgen@example.com', ['bob@example.net'], message, ' BODY=8BITMIME SMTPUTF8');
    assert.deepEqual(r.data?.map((x) => x.code), [250], JSON.stringify(r));
    const delivered = await eventually('the 8-bit message in bob\'s mailbox', () => mboxMessage(postfix.mailbox('bob@example.net'), subject), { timeoutMs: 30_000, everyMs: 50, detail: logTail });
    assert.match(delivered.toString('latin1'), /\r\nGr=C3=BC=C3=9Fe aus K=C3=B6ln/);
    const file = join(postfix.dir, 'intl.eml');
    writeFileSync(file, delivered);
    assert.deepEqual((await mailDkimVerify([file], dns.port)).map((x) => x.result), ['pass']);
    assert.deepEqual(await verifyOurs(delivered), ['pass']);
    const relayed = await daemon.waitFor((l) => l['msg'] === 'message relayed' && JSON.stringify(l['reencoded'] ?? null).includes('quoted-printable'));
    assert.equal(relayed['from'], 'jürgen@example.com');
  });

  it('verifies what arrives: the delivered copy carries our Authentication-Results, and a forged one is gone', async () => {
    // The message signed above comes back in from outside, with a forged result claiming our name.
    const signed = mboxMessage(postfix.mailbox('bob@example.net'), 'outbound through Postfix')!.toString('latin1');
    const inbound = `Authentication-Results: mx.example.com; dkim=pass header.d=forged.example\r\n${signed.slice(signed.indexOf('DKIM-Signature:'))}`;
    const file = join(postfix.dir, 'inbound.eml');
    writeFileSync(file, inbound);
    await swaks(ports.get('smtp')!, 'bob@example.net', 'alice@example.com', ['--data', file]);
    const delivered = await eventually('the verified message in alice\'s mailbox', () => mboxMessage(postfix.mailbox('alice@example.com'), 'outbound through Postfix'), { timeoutMs: 30_000, everyMs: 50, detail: logTail });
    const text = delivered.toString('latin1');
    const results = (text.match(/^Authentication-Results:.*(?:\r\n[ \t].*)*/gm) ?? []).filter((f) => !f.startsWith('Authentication-Results: opendmarc.test'));
    assert.equal(results.length, 1, text);
    // SPF for the client Postfix named in XFORWARD (swaks on 127.0.0.1, MAIL FROM bob@example.net, which publishes no SPF), DKIM, and DMARC for the From domain.
    assert.match(results[0]!, /^Authentication-Results: mx\.example\.com;\r\n\tspf=none smtp\.mailfrom=bob@example\.net \(no SPF record at example\.net\);\r\n\tdkim=pass header\.d=example\.com header\.i=@example\.com header\.s=s2026 header\.a=rsa-sha256 header\.b=[^;]+;\r\n\tdmarc=none \(no DMARC record at _dmarc\.example\.com\) header\.from=example\.com;\r\n\tarc=none$/);
    const verified = await daemon.waitFor((l) => l['msg'] === 'message relayed' && l['kind'] === 'in');
    assert.equal(verified['forgedResultsRemoved'], 1);
  });

  it('decides on SPF and DMARC for the client Postfix names: each policy, client inside and outside SPF, with and without aligned DKIM; reject_fail refuses at the sending client', async () => {
    const key = parsePrivateKey(readFileSync(join(config.dir, 'keys', 'example.com', 's2026.key')));
    if (!key.ok) throw new Error(key.message);
    let n = 0;
    let openDmarcAgreed = 0;
    /** Sends one message from `client` (a loopback address of its own, so XFORWARD names it); swaks's whole dialogue back. */
    const inbound = async (domain: string, client: string, signed: boolean): Promise<{ subject: string; dialogue: string }> => {
      const subject = `dmarc case ${n++}`;
      const text = Buffer.from([`From: Carol <carol@${domain}>`, 'To: alice@example.com', `Subject: ${subject}`, `Message-ID: <case-${n}@${domain}>`, 'Date: Tue, 01 Dec 2026 10:00:00 +0000', '', 'A case for DMARC.', ''].join('\r\n'), 'latin1');
      const signature = signed ? signMessage(text, [{ domain: 'example.com', selector: 's2026', key: key.key, algorithm: 'rsa-sha256', canonicalization: { header: 'relaxed', body: 'relaxed' } }], Math.floor(Date.now() / 1000)).join('') : '';
      const file = join(postfix.dir, `dmarc-${n}.eml`);
      writeFileSync(file, Buffer.concat([Buffer.from(signature, 'latin1'), text]));
      const args = ['--server', `127.0.0.1:${ports.get('smtp')!}`, '--local-interface', client, '--from', `bounce@${domain}`, '--to', 'alice@example.com', '--helo', `mail.${domain}`, '--data', file];
      const dialogue = await run('swaks', args, { timeout: 30_000 }).then((r) => r.stdout, (err: { stdout?: string }) => err.stdout ?? String(err));
      return { subject, dialogue };
    };
    const resultsOf = async (subject: string, compareOpenDmarc: boolean): Promise<string> => {
      const delivered = await eventually(`"${subject}" in alice's mailbox`, () => mboxMessage(postfix.mailbox('alice@example.com'), subject), { timeoutMs: 30_000, everyMs: 50, detail: logTail });
      const fields = (delivered.toString('latin1').match(/^Authentication-Results:.*(?:\r\n[ \t].*)*/gm) ?? []).map((f) => f.replace(/\r\n[ \t]+/g, ' '));
      const ours = fields.filter((f) => f.startsWith('Authentication-Results: mx.example.com;'));
      assert.equal(ours.length, 1, fields.join('\n'));
      // OpenDMARC read our spf= and dkim= as a trusted authserv-id and reached its own verdict: the same as ours.
      if (compareOpenDmarc) {
        const theirs = fields.find((f) => f.startsWith('Authentication-Results: opendmarc.test;'));
        const verdict = (f: string | undefined): string | undefined => (f ? /; dmarc=(\w+ \(p=\w+) /.exec(f)?.[1] : undefined);
        assert.equal(verdict(theirs), verdict(ours[0]), `OpenDMARC: ${theirs ?? '(no header)'}\nours: ${ours[0]}`);
        openDmarcAgreed++;
      }
      return ours[0]!;
    };

    const esc = (d: string): string => d.replace(/\./g, '\\.');
    /** All twelve cases; with reject_fail on, the one DMARC fail under p=reject is refused at swaks. */
    const matrix = async (phase: { readonly rejectFail: boolean; readonly mailfrom: 'address' | 'domain' }): Promise<void> => {
      for (const policy of POLICIES) {
        const d = policyDomain(policy);
        for (const client of ['127.0.0.2', '127.0.0.3']) {
          for (const signed of [true, false]) {
            const { subject, dialogue } = await inbound(d, client, signed);
            const spf = client === '127.0.0.2' ? 'pass' : 'fail';
            const pass = spf === 'pass' || signed;
            if (phase.rejectFail && !pass && policy === 'reject') {
              assert.match(dialogue, /<\*\* +550 5\.7\.1 Refused: DMARC policy of p-reject\.example\.com is reject/, dialogue);
              const line = await daemon.waitFor((l) => l['msg'] === 'message refused' && l['verdict'] === 'reject');
              assert.match(String(line['verdictReason']), /no relaxedly aligned DKIM pass/);
              refusedSubjects.push(subject);
              continue;
            }
            // OpenDMARC is compared where it reads our SPF result: smtp.mailfrom as a domain (see spf_mailfrom).
            const ar = await resultsOf(subject, phase.mailfrom === 'domain');
            const mailfrom = phase.mailfrom === 'domain' ? esc(d) : `bounce@${esc(d)}`;
            assert.match(ar, new RegExp(`; spf=${spf} smtp\\.mailfrom=${mailfrom} \\(${esc(d)}: matched [^)]+\\); dkim=${signed ? 'pass header\\.d=example\\.com' : 'none'}`), ar);
            assert.match(ar, new RegExp(`; dmarc=${pass ? 'pass' : 'fail'} \\(p=${policy} dis=${pass ? 'none' : policy}\\) header\\.from=${esc(d)}; arc=none$`), ar);
          }
        }
      }
    };
    const refusedSubjects: string[] = [];
    const reload = async (change: string): Promise<void> => {
      writeFileSync(config.file, readFileSync(config.file, 'utf8').replace('[in]\n', `[in]\n${change}`));
      const before = daemon.lines.length;
      daemon.child.kill('SIGHUP');
      const workers = Number((await daemon.waitFor((l) => l['msg'] === 'reload passed on to the workers' || l['msg'] === 'configuration and keys reloaded'))['workers'] ?? 1);
      await eventually('every worker reloaded', () => daemon.lines.slice(before).filter((l) => l['msg'] === 'configuration and keys reloaded').length >= workers, { timeoutMs: 10_000, everyMs: 20 });
    };

    // The README's configuration (reject_fail off): every case delivered, the verdict in its header.
    await matrix({ rejectFail: false, mailfrom: 'address' });
    // reject_fail on by SIGHUP, and smtp.mailfrom as a domain for OpenDMARC: the refused one gets 550, the rest arrive.
    await reload('reject_fail = true\nspf_mailfrom = "domain"\n');
    await matrix({ rejectFail: true, mailfrom: 'domain' });
    assert.equal(refusedSubjects.length, 1);
    assert.equal(mboxMessage(postfix.mailbox('alice@example.com'), refusedSubjects[0]!), undefined, 'the refused message was not delivered');
    assert.equal(openDmarcAgreed, 11, 'OpenDMARC reached our verdict on every message it saw');

    // Counted: the refused sender in dmarc_results, SPF results per message.
    const metrics = await (await fetch(`http://127.0.0.1:${ports.get('metrics')!}/metrics`)).text();
    const count = (series: string): number => Number(new RegExp(`^${series.replace(/[{}."]/g, '\\$&')} (\\d+)`, 'm').exec(metrics)?.[1] ?? 0);
    assert.equal(count('dkim_proxy_dmarc_results{result="fail",policy="reject",disposition="reject"}'), 2, metrics);
    assert.equal(count('dkim_proxy_spf_results{result="fail"}'), 12, metrics);
    // No message here carried ARC sets: one arc=none for every message DMARC judged.
    const dmarcTotal = [...metrics.matchAll(/^dkim_proxy_dmarc_results\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    assert.ok(dmarcTotal >= 24, metrics);
    assert.equal(count('dkim_proxy_arc_results{result="none"}'), dmarcTotal, metrics);
    // And `dkim-proxy stats` shows them.
    const stats = JSON.parse((await cli(['stats', '--json', '--config', config.file], undefined, config.dir)).stdout) as { spf: { result: string; count: number }[]; dmarc: { result: string; policy: string; disposition: string; count: number }[] };
    assert.deepEqual(stats.dmarc.find((r) => r.result === 'fail' && r.policy === 'reject'), { result: 'fail', policy: 'reject', disposition: 'reject', count: 2 });
    assert.deepEqual(stats.spf.find((r) => r.result === 'fail'), { result: 'fail', count: 12 });
    const table = (await cli(['stats', '--config', config.file], undefined, config.dir)).stdout;
    assert.match(table, /DMARC \(in\), messages\n/);
    assert.match(table, /ARC \(in\), messages\n/);
  });

  it('through a load balancer: Postfix -> HAProxy (send-proxy-v2) -> another dkim-proxy out -> Postfix, signed, XFORWARD intact', async () => {
    const p = (name: string): number => ports.get(name)!;
    const balancedToml = `workers = 1\n[out]\nlisten = "127.0.0.1:${p('out2')}"\nrelay = "127.0.0.1:${p('10028')}"\nproxy_protocol_from = ["127.0.0.1/32"]\n\n[dns]\nservers = ["${dns.server}"]\n\n[domain."example.com"]\nselector = "s2026"\nkey_file = "${join(config.dir, 'keys', 'example.com', 's2026.key')}"\n`;
    const file = join(config.dir, 'balanced.toml');
    writeFileSync(file, balancedToml);
    const balanced = startDaemon(file, config.dir);
    const cfg = join(config.dir, 'haproxy.cfg');
    writeFileSync(cfg, ['defaults', '  mode tcp', '  timeout connect 2s', '  timeout client 30s', '  timeout server 30s', 'frontend smtp', `  bind 127.0.0.1:${p('haproxy')}`, '  default_backend dkim', 'backend dkim', `  server b 127.0.0.1:${p('out2')} send-proxy-v2`, ''].join('\n'));
    const haproxy = spawn('haproxy', ['-f', cfg, '-db'], { stdio: 'ignore' });
    try {
      await balanced.port('out');
      // Postfix must not find the balancer's port closed: it would defer the message for minutes.
      await untilGreeting(p('haproxy'));
      const subject = 'outbound through a load balancer';
      const queueId = await swaks(p('balanced'), 'alice@example.com', 'bob@example.net', ['--header', `Subject: ${subject}`, '--body', 'Signed behind HAProxy.']);
      const delivered = await eventually('the signed message in bob\'s mailbox', () => mboxMessage(postfix.mailbox('bob@example.net'), subject), { timeoutMs: 30_000, everyMs: 50, detail: logTail });
      assert.match(delivered.toString('latin1'), /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.com; s=s2026;/m);
      const peerFile = join(postfix.dir, 'balanced.eml');
      writeFileSync(peerFile, delivered);
      assert.deepEqual((await mailDkimVerify([peerFile], dns.port)).map((r) => r.result), ['pass']);
      // The proxy behind the balancer saw Postfix's client (named by the PROXY header), and passed Postfix's XFORWARD on.
      const relayed = await balanced.waitFor((l) => l['msg'] === 'message relayed');
      assert.equal(relayed['client'], '127.0.0.1');
      assert.match(postfix.maillog(), new RegExp(`postfix/dksign-return/smtpd\\[\\d+\\]: \\w+: client=localhost\\[127\\.0\\.0\\.1\\], orig_queue_id=${queueId}, orig_client=localhost\\[127\\.0\\.0\\.1\\]`));
    } finally {
      haproxy.kill('SIGTERM');
      await balanced.stop();
    }
  });

  it('keeps submitted mail deferred in Postfix\'s queue while dkim-proxy is down, and delivers it once it is back', async () => {
    assert.equal(await daemon.stop(), 0);
    const subject = 'submitted while dkim-proxy was down';
    const queueId = await swaks(ports.get('submission')!, 'alice@example.com', 'bob@example.net', ['--header', `Subject: ${subject}`, '--body', 'Waits in the queue.']);
    await eventually('Postfix defers it', () => (new RegExp(`${queueId}: to=<bob@example\\.net>, relay=none, .*status=deferred \\(connect to 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${ports.get('10027')}: Connection refused\\)`).test(postfix.maillog())), { timeoutMs: 30_000, everyMs: 50, detail: logTail });
    const queue = (await postfix.postqueue('-j')).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { queue_id: string; queue_name: string });
    assert.deepEqual(queue.map((q) => [q.queue_id, q.queue_name]), [[queueId, 'deferred']]);
    assert.equal(mboxMessage(postfix.mailbox('bob@example.net'), subject), undefined);

    daemon = await startProxy();
    await postfix.postqueue('-f');
    const delivered = await eventually('the deferred message delivered', () => mboxMessage(postfix.mailbox('bob@example.net'), subject), { timeoutMs: 30_000, everyMs: 50, detail: logTail });
    assert.deepEqual(await verifyOurs(delivered), ['pass']);
    assert.equal((await postfix.postqueue('-j')).trim(), '', 'the queue is empty');
    assert.deepEqual(readdirSync(join(config.dir, 'spool')), [], 'nothing left in the spool');
  });
});
