import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseHeaderBlock } from '../dkim/index.js';
import { zoneDns, type Zone } from '../../test/helpers/spf-zone.js';
import { discoverPolicy, evaluateDmarc, type Identifiers } from './evaluate.js';
import { fromDomain } from './from.js';
import { dmarcResinfo } from './header.js';
import { aligned, organizationalDomain } from './org-domain.js';
import { parseDmarcRecord, selectDmarcRecord } from './record.js';

const fields = (text: string) => parseHeaderBlock(text.replace(/\n/g, '\r\n'));

async function dmarc(zone: Zone, from: string, ids: Identifiers, random = () => 0.5, asked: string[] = []) {
  const discovery = await discoverPolicy(fromDomain(fields(`From: ${from}\nSubject: t\n`)), zoneDns(zone, asked));
  return evaluateDmarc(discovery, ids, random);
}

const none: Identifiers = { dkimPass: [], spf: undefined };

describe('DMARC: organizational domains (Public Suffix List)', () => {
  it('ICANN rules, wildcards and exceptions, and the private section', () => {
    const cases: [string, string | null][] = [
      ['example.com', 'example.com'],
      ['mail.example.com', 'example.com'],
      ['example.co.uk', 'example.co.uk'],
      ['a.b.example.co.uk', 'example.co.uk'],
      ['co.uk', null],
      // *.kawasaki.jp with the exception !city.kawasaki.jp
      ['city.kawasaki.jp', 'city.kawasaki.jp'],
      ['www.city.kawasaki.jp', 'city.kawasaki.jp'],
      ['foo.kawasaki.jp', null],
      ['bar.foo.kawasaki.jp', 'bar.foo.kawasaki.jp'],
      ['city.kobe.jp', 'city.kobe.jp'],
      // private section: github.io is a public suffix
      ['alice.github.io', 'alice.github.io'],
      ['www.alice.github.io', 'alice.github.io'],
      ['github.io', null],
      ['xn--80ak6aa92e.xn--p1ai', 'xn--80ak6aa92e.xn--p1ai'],
    ];
    for (const [domain, org] of cases) assert.equal(organizationalDomain(domain), org, domain);
  });

  it('relaxed alignment is the same organizational domain, strict the same name', () => {
    assert.equal(aligned('mail.example.com', 'example.com', 'r'), true);
    assert.equal(aligned('mail.example.com', 'example.com', 's'), false);
    assert.equal(aligned('EXAMPLE.com.', 'example.com', 's'), true);
    assert.equal(aligned('alice.github.io', 'bob.github.io', 'r'), false);
    assert.equal(aligned('example.co.uk', 'other.co.uk', 'r'), false);
  });
});

describe('DMARC: records', () => {
  it('parses tags case-insensitively, with defaults', () => {
    const r = parseDmarcRecord('v=DMARC1; P=Reject; sp=quarantine; np=reject; adkim=s; pct=20; rua=mailto:d@example.com; x-future=1');
    assert.ok(r.ok);
    assert.deepEqual({ p: r.record.p, sp: r.record.sp, np: r.record.np, adkim: r.record.adkim, aspf: r.record.aspf, pct: r.record.pct }, { p: 'reject', sp: 'quarantine', np: 'reject', adkim: 's', aspf: 'r', pct: 20 });
    const d = parseDmarcRecord('v=DMARC1;p=none');
    assert.ok(d.ok);
    assert.equal(d.record.pct, 100);
  });

  it('a bad p is a permerror unless a report address is given (RFC 7489 §6.6.3 step 6: then p=none)', () => {
    assert.deepEqual(parseDmarcRecord('v=DMARC1; p=bogus'), { ok: false, reason: 'p=bogus is not a policy (none, quarantine or reject)' });
    assert.deepEqual(parseDmarcRecord('v=DMARC1'), { ok: false, reason: 'the record has no p= tag' });
    const r = parseDmarcRecord('v=DMARC1; rua=mailto:agg@example.com');
    assert.ok(r.ok);
    assert.equal(r.record.p, 'none');
    assert.equal(parseDmarcRecord('v=DMARC1; p=reject; garbage').ok, false);
    assert.equal(parseDmarcRecord('v=DMARC1; p=reject; x=\xe9').ok, false);
  });

  it('selects the one record starting with v=DMARC1; several are none (§6.6.3 step 5); strings are joined', () => {
    const s = (...t: string[][]) => t.map((strings) => strings.map((x) => Buffer.from(x, 'latin1')));
    assert.deepEqual(selectDmarcRecord(s(['v=spf1 -all'], ['v=DMAR', 'C1; p=reject'])), { kind: 'one', text: 'v=DMARC1; p=reject' });
    assert.deepEqual(selectDmarcRecord(s(['v=DMARC1; p=none'], ['v=DMARC1; p=reject'])), { kind: 'several', count: 2 });
    assert.deepEqual(selectDmarcRecord(s([''])), { kind: 'none' });
    assert.deepEqual(selectDmarcRecord(s(['p=reject; v=DMARC1'])), { kind: 'none' });
  });
});

describe('DMARC: the From domain', () => {
  it('takes From, never Sender; a display name that names another domain does not count', () => {
    assert.deepEqual(fromDomain(fields('From: "paypal.com" <alice@evil.example>\nSender: bob@paypal.com\n')), { kind: 'domain', domain: 'evil.example' });
    assert.deepEqual(fromDomain(fields('From: a@Example.COM, b@example.com\n')), { kind: 'domain', domain: 'example.com' });
  });

  it('no From is none; several domains, several From fields or no domain are permerrors', () => {
    assert.equal(fromDomain(fields('Subject: x\n')).kind, 'none');
    assert.equal(fromDomain(fields('From: a@one.example, b@two.example\n')).kind, 'permerror');
    assert.equal(fromDomain(fields('From: a@one.example\nFrom: b@one.example\n')).kind, 'permerror');
    assert.equal(fromDomain(fields('From: undisclosed-recipients:;\n')).kind, 'permerror');
    assert.equal(fromDomain(fields('From: alice\n')).kind, 'permerror');
  });

  it('an IDN domain in U-labels becomes A-labels', () => {
    assert.deepEqual(fromDomain(fields(Buffer.from('From: a@пример.рф\n', 'utf8').toString('latin1'))), { kind: 'domain', domain: 'xn--e1afmkfd.xn--p1ai' });
    assert.deepEqual(fromDomain(fields('From: a@xn--e1afmkfd.xn--p1ai\n')), { kind: 'domain', domain: 'xn--e1afmkfd.xn--p1ai' });
  });
});

describe('DMARC: evaluation', () => {
  const zone: Zone = {
    txt: {
      '_dmarc.example.com': ['v=DMARC1; p=reject; sp=quarantine; np=reject; aspf=s'],
      '_dmarc.strict.example': ['v=DMARC1; p=quarantine; adkim=s; aspf=s'],
      '_dmarc.half.example': ['v=DMARC1; p=reject; pct=50'],
      '_dmarc.two.example': ['v=DMARC1; p=reject', 'v=DMARC1; p=none'],
      '_dmarc.broken.example': ['v=DMARC1; p=rejectt'],
      '_dmarc.example.co.uk': ['v=DMARC1; p=reject'],
    },
    a: { 'mail.example.com': ['192.0.2.1'], 'example.com': ['192.0.2.2'] },
    timeout: ['_dmarc.slow.example'],
  };

  it('aligned DKIM passes (relaxed: a subdomain signature); the result says which', async () => {
    const r = await dmarc(zone, 'a@example.com', { dkimPass: ['mail.example.com'], spf: undefined });
    assert.deepEqual([r.result, r.policy, r.disposition, r.aligned.dkim], ['pass', 'reject', 'none', 'mail.example.com']);
    assert.equal(dmarcResinfo(r), 'dmarc=pass (p=reject dis=none) header.from=example.com');
  });

  it('SPF alignment follows aspf: strict needs the very name', async () => {
    assert.equal((await dmarc(zone, 'a@example.com', { dkimPass: [], spf: { result: 'pass', domain: 'example.com' } })).result, 'pass');
    assert.equal((await dmarc(zone, 'a@example.com', { dkimPass: [], spf: { result: 'pass', domain: 'bounce.example.com' } })).result, 'fail');
    assert.equal((await dmarc(zone, 'a@example.com', { dkimPass: [], spf: { result: 'softfail', domain: 'example.com' } })).result, 'fail');
  });

  it('a failing message gets p; a subdomain sp; a subdomain that does not exist np', async () => {
    const top = await dmarc(zone, 'a@example.com', none);
    assert.deepEqual([top.result, top.policy, top.disposition], ['fail', 'reject', 'reject']);
    assert.equal(dmarcResinfo(top), 'dmarc=fail (p=reject dis=reject) header.from=example.com');
    const sub = await dmarc(zone, 'a@mail.example.com', none);
    assert.deepEqual([sub.result, sub.policy, sub.disposition, sub.recordAt], ['fail', 'quarantine', 'quarantine', 'example.com']);
    const ghost = await dmarc(zone, 'a@ghost.example.com', none);
    assert.deepEqual([ghost.result, ghost.policy], ['fail', 'reject']);
  });

  it('pct: mail not sampled gets the next policy down (§6.6.4)', async () => {
    const sampled = await dmarc(zone, 'a@half.example', none, () => 0.2);
    const spared = await dmarc(zone, 'a@half.example', none, () => 0.7);
    assert.deepEqual([sampled.policy, sampled.disposition], ['reject', 'reject']);
    assert.deepEqual([spared.policy, spared.disposition], ['reject', 'quarantine']);
  });

  it('strict DKIM alignment refuses a subdomain signature', async () => {
    const r = await dmarc(zone, 'a@strict.example', { dkimPass: ['mail.strict.example'], spf: undefined });
    assert.equal(r.result, 'fail');
  });

  it('no record, several records, a public suffix: none; a malformed record: permerror; a timeout: temperror', async () => {
    assert.equal((await dmarc(zone, 'a@nothing.example', none)).result, 'none');
    assert.equal((await dmarc(zone, 'a@two.example', none)).result, 'none');
    const asked: string[] = [];
    const suffix = await dmarc(zone, 'a@co.uk', none, undefined, asked);
    assert.equal(suffix.result, 'none');
    assert.deepEqual(asked, [], 'a public suffix is never queried');
    const broken = await dmarc(zone, 'a@broken.example', none);
    assert.equal(broken.result, 'permerror');
    assert.match(dmarcResinfo(broken), /^dmarc=permerror \(_dmarc\.broken\.example: p=rejectt is not a policy/);
    const slow = await dmarc(zone, 'a@slow.example', none);
    assert.equal(slow.result, 'temperror');
  });

  it('only _dmarc.<From domain> and _dmarc.<organizational domain> are queried', async () => {
    const asked: string[] = [];
    await dmarc(zone, 'a@x.y.example.co.uk', none, undefined, asked);
    assert.deepEqual(asked.filter((q) => q.startsWith('TXT')), ['TXT _dmarc.x.y.example.co.uk', 'TXT _dmarc.example.co.uk']);
  });
});
