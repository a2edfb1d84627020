import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { zoneDns, type Zone } from '../../test/helpers/spf-zone.js';
import { checkSpf, type SpfResult } from './evaluate.js';
import { expandMacros } from './macro.js';
import { parseRecord } from './record.js';

// RFC 7208 Appendix A: the example zone.
const A1: Zone = {
  a: {
    'example.com': ['192.0.2.10', '192.0.2.11'],
    'amy.example.com': ['192.0.2.65'],
    'bob.example.com': ['192.0.2.66'],
    'mail-a.example.com': ['192.0.2.129'],
    'mail-b.example.com': ['192.0.2.130'],
    'www.example.com': ['192.0.2.10', '192.0.2.11'],
    'mail-c.example.org': ['192.0.2.140'],
  },
  mx: { 'example.com': [[10, 'mail-a.example.com'], [20, 'mail-b.example.com']], 'example.org': [[10, 'mail-c.example.org']] },
  ptr: {
    '10.2.0.192.in-addr.arpa': ['example.com'],
    '11.2.0.192.in-addr.arpa': ['example.com'],
    '65.2.0.192.in-addr.arpa': ['amy.example.com'],
    '66.2.0.192.in-addr.arpa': ['bob.example.com'],
    '129.2.0.192.in-addr.arpa': ['mail-a.example.com'],
    '130.2.0.192.in-addr.arpa': ['mail-b.example.com'],
    '140.2.0.192.in-addr.arpa': ['mail-c.example.org'],
    '10.0.0.10.in-addr.arpa': ['bob.example.com'],
  },
};

async function results(record: string, ips: readonly string[], zone: Zone = A1): Promise<SpfResult[]> {
  const dns = zoneDns({ ...zone, txt: { ...zone.txt, 'example.com': [record] } });
  return Promise.all(ips.map(async (ip) => (await checkSpf({ ip, mailFrom: 'user@example.com', helo: 'mx.example.net', now: 0 }, dns)).result));
}

const IPS = ['192.0.2.10', '192.0.2.11', '192.0.2.65', '192.0.2.66', '192.0.2.129', '192.0.2.130', '192.0.2.140', '10.0.0.10', '192.0.2.200'];
const passing = async (record: string): Promise<string[]> => {
  const r = await results(record, IPS);
  return IPS.filter((_, k) => r[k] === 'pass');
};

describe('SPF: RFC 7208 Appendix A.1', () => {
  it('+all, a, a:domain, mx, mx:domain, mx with CIDR, ptr, ip4 with CIDR', async () => {
    assert.deepEqual(await passing('v=spf1 +all'), IPS);
    assert.deepEqual(await passing('v=spf1 a -all'), ['192.0.2.10', '192.0.2.11']);
    assert.deepEqual(await passing('v=spf1 a:example.org -all'), []);
    assert.deepEqual(await passing('v=spf1 mx -all'), ['192.0.2.129', '192.0.2.130']);
    assert.deepEqual(await passing('v=spf1 mx:example.org -all'), ['192.0.2.140']);
    assert.deepEqual(await passing('v=spf1 mx mx:example.org -all'), ['192.0.2.129', '192.0.2.130', '192.0.2.140']);
    assert.deepEqual(await passing('v=spf1 mx/30 mx:example.org/30 -all'), ['192.0.2.129', '192.0.2.130', '192.0.2.140']);
    assert.deepEqual(await passing('v=spf1 ptr -all'), ['192.0.2.10', '192.0.2.11', '192.0.2.65', '192.0.2.66', '192.0.2.129', '192.0.2.130']);
    assert.deepEqual(await passing('v=spf1 ip4:192.0.2.128/28 -all'), ['192.0.2.129', '192.0.2.130', '192.0.2.140']);
    assert.deepEqual(await results('v=spf1 a -all', ['192.0.2.200']), ['fail']);
    assert.deepEqual(await results('v=spf1 ~all', ['192.0.2.200']), ['softfail']);
    assert.deepEqual(await results('v=spf1 ?all', ['192.0.2.200']), ['neutral']);
    assert.deepEqual(await results('v=spf1 ip4:192.0.2.1', ['192.0.2.200']), ['neutral'], 'nothing matched, no redirect');
  });
});

describe('SPF: RFC 7208 §7.4, the macro examples', () => {
  const context = (ip: string) => ({ sender: 'strong-bad@email.example.com', domain: 'email.example.com', ip, helo: 'mx.example.org', receiver: 'mx.example.net', validatedName: () => Promise.resolve('unknown'), now: 0 });
  const cases: [string, string][] = [
    ['%{s}', 'strong-bad@email.example.com'],
    ['%{o}', 'email.example.com'],
    ['%{d}', 'email.example.com'],
    ['%{d4}', 'email.example.com'],
    ['%{d3}', 'email.example.com'],
    ['%{d2}', 'example.com'],
    ['%{d1}', 'com'],
    ['%{dr}', 'com.example.email'],
    ['%{d2r}', 'example.email'],
    ['%{l}', 'strong-bad'],
    ['%{l-}', 'strong.bad'],
    ['%{lr}', 'strong-bad'],
    ['%{lr-}', 'bad.strong'],
    ['%{l1r-}', 'strong'],
    ['%{ir}.%{v}._spf.%{d2}', '3.2.0.192.in-addr._spf.example.com'],
    ['%{lr-}.lp._spf.%{d2}', 'bad.strong.lp._spf.example.com'],
    ['%{lr-}.lp.%{ir}.%{v}._spf.%{d2}', 'bad.strong.lp.3.2.0.192.in-addr._spf.example.com'],
    ['%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}', '3.2.0.192.in-addr.strong.lp._spf.example.com'],
    ['%{d2}.trusted-domains.example.net', 'example.com.trusted-domains.example.net'],
  ];
  it('expands each as the RFC says', async () => {
    for (const [spec, want] of cases) {
      const e = await expandMacros(spec, context('192.0.2.3'));
      assert.deepEqual(e, { ok: true, text: want }, spec);
    }
    assert.deepEqual(await expandMacros('%{ir}.%{v}._spf.%{d2}', context('2001:db8::cb01')), { ok: true, text: '1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com' });
  });

  it('escapes, URL-encodes upper-case letters, keeps %{c} %{r} %{t} to explanations, and refuses a stray %', async () => {
    assert.deepEqual(await expandMacros('a%%b%_c%-d', context('192.0.2.3')), { ok: true, text: 'a%b c%20d' });
    assert.deepEqual(await expandMacros('%{S}', context('192.0.2.3')), { ok: true, text: 'strong-bad%40email.example.com' });
    assert.equal((await expandMacros('%{r}', context('192.0.2.3'))).ok, false);
    assert.deepEqual(await expandMacros('%{c} via %{r}', context('192.0.2.3'), true), { ok: true, text: '192.0.2.3 via mx.example.net' });
    assert.equal((await expandMacros('50%', context('192.0.2.3'))).ok, false);
    assert.equal((await expandMacros('%{d0}', context('192.0.2.3'))).ok, false);
  });
});

describe('SPF: the rules of check_host()', () => {
  const run = (zone: Zone, ip = '192.0.2.1', mailFrom = 'user@example.com', helo = 'helo.example.net', asked: string[] = []) => checkSpf({ ip, mailFrom, helo, now: 0, receiver: 'mx.test' }, zoneDns(zone, asked));

  it('none without a record; permerror for two records, a bad term, or non-ASCII; temperror when the TXT lookup fails', async () => {
    assert.equal((await run({ a: { 'example.com': ['192.0.2.9'] } })).result, 'none');
    assert.equal((await run({ txt: { 'example.com': ['v=spf1 -all', 'v=spf1 +all'] } })).result, 'permerror');
    assert.equal((await run({ txt: { 'example.com': ['v=spf1 foo -all'] } })).result, 'permerror');
    assert.equal((await run({ txt: { 'example.com': ['v=spf1 ip4:192.0.2.1/33 -all'] } })).result, 'permerror');
    assert.equal((await run({ txt: { 'example.com': ['v=spf1 a:caf\xe9.example.com -all'] } })).result, 'permerror');
    assert.equal((await run({ timeout: ['example.com'] })).result, 'temperror');
    // Records that merely start alike are not SPF records.
    assert.equal((await run({ txt: { 'example.com': ['v=spf10 -all', 'google-site-verification=x'] } })).result, 'none');
  });

  it('include: pass matches, fail does not, none is a permerror; an include of itself hits the lookup limit', async () => {
    const zone: Zone = { txt: { 'example.com': ['v=spf1 include:a.example.net include:b.example.net -all'], 'a.example.net': ['v=spf1 -all'], 'b.example.net': ['v=spf1 ip4:192.0.2.1 -all'] } };
    const r = await run(zone);
    assert.deepEqual([r.result, r.mechanism], ['pass', 'include:b.example.net']);
    assert.equal((await run({ txt: { 'example.com': ['v=spf1 include:nothing.example.net -all'] } })).result, 'permerror');
    const loop = await run({ txt: { 'example.com': ['v=spf1 include:example.com -all'] } });
    assert.equal(loop.result, 'permerror');
    assert.match(loop.reason, /more than 10 DNS lookups/);
  });

  it('redirect= applies when nothing matched, to a domain that must have a record; exp= explains a fail', async () => {
    const zone: Zone = {
      txt: { 'example.com': ['v=spf1 ip4:198.51.100.1 redirect=_spf.example.net exp=why.example.com'], '_spf.example.net': ['v=spf1 -all exp=explain._spf.example.net'], 'explain._spf.example.net': ['%{i} may not send mail for %{d}'] },
    };
    const r = await run(zone);
    assert.deepEqual([r.result, r.explanation], ['fail', '192.0.2.1 may not send mail for _spf.example.net']);
    assert.equal((await run({ txt: { 'example.com': ['v=spf1 redirect=nothing.example.net'] } })).result, 'permerror');
    assert.equal((await run({ txt: { 'example.com': ['v=spf1 redirect=a.example.net redirect=b.example.net'] } })).result, 'permerror');
  });

  it('more than two void lookups is a permerror; exactly two is not', async () => {
    const two = await run({ txt: { 'example.com': ['v=spf1 a:n1.example.com a:n2.example.com ?all'] } });
    assert.equal(two.result, 'neutral');
    const three = await run({ txt: { 'example.com': ['v=spf1 a:n1.example.com a:n2.example.com exists:n3.example.com ?all'] } });
    assert.equal(three.result, 'permerror');
    assert.match(three.reason, /more than 2 lookups found nothing/);
  });

  it('more than ten DNS mechanisms is a permerror, counted before each query', async () => {
    const mechanisms = Array.from({ length: 11 }, (_, k) => `a:h${k}.example.com`).join(' ');
    const a = Object.fromEntries(Array.from({ length: 11 }, (_, k) => [`h${k}.example.com`, ['198.51.100.9']]));
    const asked: string[] = [];
    const r = await run({ txt: { 'example.com': [`v=spf1 ${mechanisms} -all`] }, a }, '192.0.2.1', 'user@example.com', 'h', asked);
    assert.equal(r.result, 'permerror');
    assert.equal(asked.filter((q) => q.startsWith('A ')).length, 10, 'the eleventh is never asked');
  });

  it('null sender: postmaster@HELO is checked, identity helo; IPv4-mapped IPv6 counts as IPv4; IPv6 and ip6', async () => {
    const zone: Zone = { txt: { 'helo.example.net': ['v=spf1 ip4:192.0.2.1 ip6:2001:db8::/32 -all'] } };
    const r = await run(zone, '192.0.2.1', '');
    assert.deepEqual([r.result, r.identity, r.sender, r.domain], ['pass', 'helo', 'postmaster@helo.example.net', 'helo.example.net']);
    assert.equal((await run(zone, '::ffff:192.0.2.1', '')).result, 'pass');
    assert.equal((await run(zone, '2001:db8::1', '')).result, 'pass');
    assert.equal((await run(zone, '2001:db9::1', '')).result, 'fail');
  });

  it('%{p} is a validated name in the domain being evaluated, also inside an include', async () => {
    const zone: Zone = {
      txt: { 'one.test': ['v=spf1 exists:%{p}._p.one.test include:two.test -all'], 'two.test': ['v=spf1 exists:%{p}._p.two.test -all'] },
      ptr: { '5.2.0.192.in-addr.arpa': ['b.two.test', 'a.one.test', 'liar.one.test'] },
      a: { 'a.one.test': ['192.0.2.5'], 'b.two.test': ['192.0.2.5'], 'liar.one.test': ['198.51.100.1'], 'b.two.test._p.two.test': ['127.0.0.2'] },
    };
    const r = await run(zone, '192.0.2.5', 'user@one.test');
    assert.deepEqual([r.result, r.mechanism], ['pass', 'include:two.test']);
  });

  it('a MAIL FROM domain that is not a fully qualified name is none', async () => {
    assert.equal((await run({}, '192.0.2.1', 'user@localhost')).result, 'none');
    assert.equal((await run({}, '192.0.2.1', `user@${'x'.repeat(64)}.com`)).result, 'none');
  });
});

describe('SPF record syntax', () => {
  it('reads qualifiers, CIDR lengths and modifiers, and ignores unknown modifiers', () => {
    const r = parseRecord('v=spf1 -ip4:192.0.2.0/24 ~a:mail.example.com/28//64 ?mx include:_spf.example.net foo=bar exp=x.example.com -all');
    assert.ok(r.ok);
    assert.deepEqual(
      r.record.mechanisms.map((m) => [m.qualifier, m.name, m.domain ?? m.address ?? '', m.cidr4 ?? '', m.cidr6 ?? '']),
      [
        ['-', 'ip4', '192.0.2.0', 24, ''],
        ['~', 'a', 'mail.example.com', 28, 64],
        ['?', 'mx', '', '', ''],
        ['+', 'include', '_spf.example.net', '', ''],
        ['-', 'all', '', '', ''],
      ],
    );
    assert.equal(r.record.exp, 'x.example.com');
    for (const bad of ['v=spf1 all:x', 'v=spf1 ip4:192.0.2', 'v=spf1 ip6:2001:db8::/129', 'v=spf1 include', 'v=spf1 a:', 'v=spf1 exp=a exp=b']) assert.equal(parseRecord(bad).ok, false, bad);
  });
});
