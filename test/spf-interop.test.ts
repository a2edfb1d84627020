/**
 * SPF results against two independent implementations, for real: a
 * generated zone served by the wire test server on loopback (UDP and TCP),
 * the same queries to our check_host() over the wire-format client, to
 * pyspf (Debian python3-spf) and to Mail::SPF (libmail-spf-perl).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createWireResolver } from '../src/dns/wire.js';
import { checkSpf } from '../src/spf/evaluate.js';
import { cli } from './helpers/cli.js';
import { fixturePath } from './helpers/fixtures.js';
import { startWireDns, type WireDnsServer, type ZoneRecord } from './helpers/wire-dns-server.js';

const run = promisify(execFile);

/** Domain → its SPF record; each tests one rule. Extra A/AAAA/MX/PTR records below. */
const POLICIES: Record<string, string> = {
  'all-pass.test': 'v=spf1 +all',
  'all-fail.test': 'v=spf1 -all',
  'soft.test': 'v=spf1 ~all',
  'neutral.test': 'v=spf1 ?all',
  'nothing-matches.test': 'v=spf1 ip4:198.51.100.0/24',
  'ip4.test': 'v=spf1 ip4:192.0.2.0/25 -all',
  'ip4-host.test': 'v=spf1 ip4:192.0.2.130 -all',
  'ip6.test': 'v=spf1 ip6:2001:db8::/48 -all',
  'a.test': 'v=spf1 a -all',
  'a-cidr.test': 'v=spf1 a:hosts.a.test/24 -all',
  'a-dual.test': 'v=spf1 a:hosts.a.test/32//64 -all',
  'mx.test': 'v=spf1 mx -all',
  'mx-cidr.test': 'v=spf1 mx/30 -all',
  'include.test': 'v=spf1 include:ip4.test include:ip6.test ~all',
  'include-none.test': 'v=spf1 include:no-record.test -all',
  'include-fail.test': 'v=spf1 include:all-fail.test ?all',
  'redirect.test': 'v=spf1 redirect=ip4.test',
  'redirect-none.test': 'v=spf1 redirect=no-record.test',
  'redirect-ignored.test': 'v=spf1 -all redirect=all-pass.test',
  'exists.test': 'v=spf1 exists:%{i}.allow.exists.test -all',
  'exists-l.test': 'v=spf1 exists:%{l}.users.exists.test -all',
  'macro-ir.test': 'v=spf1 exists:%{ir}.%{v}._spf.%{d} -all',
  'ptr.test': 'v=spf1 ptr -all',
  'two-records.test': 'v=spf1 +all',
  'syntax.test': 'v=spf1 ip4:192.0.2.1/40 -all',
  'unknown-mech.test': 'v=spf1 foo:bar -all',
  'unknown-mod.test': 'v=spf1 future=thing ip4:192.0.2.0/24 -all',
  'voids.test': 'v=spf1 a:v1.void.test a:v2.void.test a:v3.void.test ip4:192.0.2.0/24 -all',
  'two-voids.test': 'v=spf1 a:v1.void.test a:v2.void.test ip4:192.0.2.0/24 -all',
  'loop.test': 'v=spf1 include:loop.test -all',
  'eleven.test': `v=spf1 ${Array.from({ length: 11 }, (_, k) => `a:h${k}.hosts.test`).join(' ')} -all`,
  'ten.test': `v=spf1 ${Array.from({ length: 9 }, (_, k) => `a:h${k}.hosts.test`).join(' ')} a:hosts.a.test -all`,
  'case.test': 'V=SPF1 IP4:192.0.2.0/24 -ALL',
  'helo.test': 'v=spf1 ip4:192.0.2.10 -all',
};

const CLIENTS = ['192.0.2.10', '192.0.2.130', '192.0.2.200', '198.51.100.7', '2001:db8::10', '2001:db8:1::5'];

function zone(): Map<string, ZoneRecord[]> {
  const z = new Map<string, ZoneRecord[]>();
  const add = (name: string, r: ZoneRecord): void => void z.set(name, [...(z.get(name) ?? []), r]);
  for (const [d, record] of Object.entries(POLICIES)) add(d, { type: 'TXT', data: [Buffer.from(record)] });
  add('two-records.test', { type: 'TXT', data: [Buffer.from('v=spf1 -all')] });
  add('a.test', { type: 'A', data: '192.0.2.10' });
  add('a.test', { type: 'AAAA', data: '2001:db8::10' });
  add('hosts.a.test', { type: 'A', data: '192.0.2.1' });
  add('hosts.a.test', { type: 'AAAA', data: '2001:db8::1' });
  add('mx.test', { type: 'MX', data: { preference: 10, exchange: 'mail.mx.test' } });
  add('mx-cidr.test', { type: 'MX', data: { preference: 10, exchange: 'mail.mx.test' } });
  add('mail.mx.test', { type: 'A', data: '192.0.2.129' });
  add('192.0.2.10.allow.exists.test', { type: 'A', data: '127.0.0.2' });
  add('user.users.exists.test', { type: 'A', data: '127.0.0.2' });
  add('10.2.0.192.in-addr._spf.macro-ir.test', { type: 'A', data: '127.0.0.2' });
  add('10.2.0.192.in-addr.arpa', { type: 'PTR', data: 'host.ptr.test' });
  add('130.2.0.192.in-addr.arpa', { type: 'PTR', data: 'liar.ptr.test' });
  add('host.ptr.test', { type: 'A', data: '192.0.2.10' });
  add('liar.ptr.test', { type: 'A', data: '198.51.100.99' });
  add('no-record.test', { type: 'A', data: '192.0.2.99' });
  for (let k = 0; k < 11; k++) add(`h${k}.hosts.test`, { type: 'A', data: '198.51.100.1' });
  // The void domain exists (so its names are NXDOMAIN, not a failure).
  add('void.test', { type: 'A', data: '198.51.100.2' });
  add('explained.test', { type: 'TXT', data: [Buffer.from('v=spf1 ip4:192.0.2.0/25 -all exp=why.explained.test')] });
  add('why.explained.test', { type: 'TXT', data: [Buffer.from('%{c} is not allowed to send for %{d}; ask %{r}')] });
  return z;
}

interface Query {
  readonly ip: string;
  readonly mailFrom: string;
  readonly helo: string;
}

const QUERIES: Query[] = [
  ...Object.keys(POLICIES).flatMap((d) => CLIENTS.map((ip) => ({ ip, mailFrom: `user@${d}`, helo: 'client.example.net' }))),
  // Null sender: the HELO identity.
  ...CLIENTS.map((ip) => ({ ip, mailFrom: '', helo: 'helo.test' })),
  // No record at all, and a name that does not exist.
  { ip: '192.0.2.10', mailFrom: 'user@no-record.test', helo: 'client.example.net' },
  { ip: '192.0.2.10', mailFrom: 'user@does-not-exist.test', helo: 'client.example.net' },
];

let dns: WireDnsServer;

before(async () => {
  dns = await startWireDns(zone());
});
after(async () => {
  await dns?.stop();
});

async function oracle(cmd: string, script: string): Promise<string[]> {
  const child = run(cmd, [script], { timeout: 120_000, maxBuffer: 1 << 22 });
  child.child.stdin!.end(JSON.stringify({ server: dns.server, queries: QUERIES }));
  return JSON.parse((await child).stdout) as string[];
}

describe('SPF against pyspf and Mail::SPF', () => {
  it(`${QUERIES.length} queries over ${Object.keys(POLICIES).length} generated policies: the same result as both`, async () => {
    const resolver = createWireResolver({ servers: [dns.server], timeoutMs: 3000 });
    const ours = await Promise.all(QUERIES.map(async (q) => (await checkSpf({ ...q, now: 0 }, resolver)).result));
    const [py, perl] = await Promise.all([oracle('/usr/bin/python3', fixturePath('..', 'peers', 'spf_pyspf.py')), oracle('perl', fixturePath('..', 'peers', 'spf_mailspf.pl'))]);
    const rows = QUERIES.map((q, k) => ({ q: `${q.mailFrom || `<> HELO ${q.helo}`} from ${q.ip}`, ours: ours[k], py: py[k], perl: perl[k] }));
    const disagree = rows.filter((r) => r.ours !== r.py || r.ours !== r.perl);
    assert.deepEqual(disagree, [], `disagreements:\n${disagree.map((r) => `${r.q}: ours ${r.ours}, pyspf ${r.py}, Mail::SPF ${r.perl}`).join('\n')}`);
    // The set covers every result word.
    assert.deepEqual([...new Set(ours)].sort(), ['fail', 'neutral', 'none', 'pass', 'permerror', 'softfail'].sort());
  });
});

describe('dkim-proxy spf', () => {
  it('prints the result word first, and with --json the result, domain, identity, mechanism and explanation; exit 0 whatever the result', async () => {
    const pass = await cli(['spf', '--ip', '192.0.2.10', '--mail-from', 'user@ip4.test', '--helo', 'client.example.net', '--dns-server', dns.server]);
    assert.equal(pass.code, 0);
    assert.equal(pass.stdout.split('\n')[0], 'pass');
    assert.match(pass.stdout, /mailfrom user@ip4\.test: ip4\.test: matched ip4:192\.0\.2\.0\/25/);
    const fail = await cli(['spf', '--ip', '192.0.2.200', '--mail-from', 'user@explained.test', '--receiver', 'mx.example.com', '--dns-server', dns.server, '--json']);
    assert.equal(fail.code, 0, 'a fail is data, not an error');
    assert.deepEqual(JSON.parse(fail.stdout), {
      result: 'fail',
      domain: 'explained.test',
      identity: 'mailfrom',
      mechanism: '-all',
      explanation: '192.0.2.200 is not allowed to send for explained.test; ask mx.example.com',
      reason: 'explained.test: matched -all',
    });
    const bounce = await cli(['spf', '--ip', '192.0.2.10', '--helo', 'helo.test', '--dns-server', dns.server, '--json']);
    assert.deepEqual([JSON.parse(bounce.stdout).result, JSON.parse(bounce.stdout).identity, JSON.parse(bounce.stdout).domain], ['pass', 'helo', 'helo.test']);
  });

  it('gives usage errors exit 64, naming the problem', async () => {
    for (const [args, message] of [
      [['spf'], /needs --ip/],
      [['spf', '--ip', '300.1.1.1', '--helo', 'x.test'], /--ip: expected an IPv4 or IPv6 address/],
      [['spf', '--ip', '192.0.2.1'], /give --helo/],
      [['spf', '--ip', '192.0.2.1', '--mail-from', 'nobody'], /--mail-from: expected an address/],
    ] as const) {
      const r = await cli([...args]);
      assert.equal(r.code, 64, args.join(' '));
      assert.match(r.stderr, message);
    }
  });
});
