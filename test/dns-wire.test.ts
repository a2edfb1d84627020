/**
 * The wire-format DNS client over real sockets: against dnsmasq on loopback
 * for ordinary names, and against the test server of helpers/wire-dns-server
 * for what dnsmasq's configuration cannot hold (names with %, / and spaces,
 * TXT octets over 0x7f); a silent server for timeouts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createWireResolver, nameProblem } from '../src/dns/wire.js';
import { startDnsmasq, startSilentDns, type TestDns } from './helpers/dns-server.js';
import { startWireDns, type WireDnsServer } from './helpers/wire-dns-server.js';

let dnsmasq: TestDns;
let wire: WireDnsServer;
let silent: TestDns;

before(async () => {
  dnsmasq = await startDnsmasq(new Map([['txt.example.com', ['v=spf1 -all']], ['long.example.com', ['y'.repeat(700)]]]), ['example.com']);
  wire = await startWireDns(
    new Map([
      ['a%b/c d.example.org', [{ type: 'TXT', data: [Buffer.from('odd name')] }]],
      ['octets.example.org', [{ type: 'TXT', data: [Buffer.from([0x76, 0x3d, 0xe9, 0xff]), Buffer.from('second')] }]],
      ['empty.example.org', [{ type: 'TXT', data: [Buffer.alloc(0)] }]],
      ['big.example.org', [{ type: 'TXT', data: [Buffer.alloc(255, 0x61), Buffer.alloc(255, 0x62), Buffer.alloc(255, 0x63)] }]],
      ['host.example.org', [{ type: 'A', data: '192.0.2.10' }, { type: 'A', data: '192.0.2.11' }, { type: 'AAAA', data: '2001:db8::10' }]],
      ['example.org', [{ type: 'MX', data: { preference: 10, exchange: 'mx.example.org' } }]],
      ['10.2.0.192.in-addr.arpa', [{ type: 'PTR', data: 'host.example.org' }]],
    ]),
  );
  silent = await startSilentDns();
});
after(async () => {
  await dnsmasq?.stop();
  await wire?.stop();
  await silent?.stop();
});

describe('the wire-format DNS client', () => {
  it('reads TXT from dnsmasq, and keeps NXDOMAIN apart from NODATA', async () => {
    const r = createWireResolver({ servers: [dnsmasq.server], timeoutMs: 2000 });
    const txt = await r.txt('txt.example.com');
    assert.equal(txt.kind, 'found');
    assert.deepEqual(txt.kind === 'found' ? txt.records.map((rec) => Buffer.concat(rec).toString()) : [], ['v=spf1 -all']);
    assert.equal((await r.txt('missing.example.com')).kind, 'nxdomain');
    assert.equal((await r.a('txt.example.com')).kind, 'nodata');
  });

  it('asks again over TCP when the UDP answer is truncated, and gets every string of the record', async () => {
    const r = createWireResolver({ servers: [wire.server], timeoutMs: 2000 });
    const before = { ...wire.queries };
    const big = await r.txt('big.example.org');
    assert.equal(big.kind, 'found');
    assert.deepEqual(big.kind === 'found' ? big.records[0]!.map((s) => s.length) : [], [255, 255, 255]);
    assert.deepEqual([wire.queries.udp - before.udp, wire.queries.tcp - before.tcp], [1, 1]);
    // dnsmasq truncates too: the 700-octet record arrives whole.
    const long = await createWireResolver({ servers: [dnsmasq.server], timeoutMs: 2000 }).txt('long.example.com');
    assert.equal(long.kind === 'found' ? Buffer.concat(long.records[0]!).length : 0, 700);
  });

  it('sends names that node:dns refuses (%, /, a space in a label) and returns TXT as octets', async () => {
    const r = createWireResolver({ servers: [wire.server], timeoutMs: 2000 });
    const odd = await r.txt('a%b/c d.example.org');
    assert.equal(odd.kind === 'found' ? odd.records[0]![0]!.toString() : odd.kind, 'odd name');
    const octets = await r.txt('octets.example.org');
    assert.ok(octets.kind === 'found');
    assert.deepEqual([...octets.records[0]![0]!], [0x76, 0x3d, 0xe9, 0xff], 'not decoded as text');
    assert.equal(octets.records[0]![1]!.toString(), 'second');
    const empty = await r.txt('empty.example.org');
    assert.deepEqual(empty.kind === 'found' ? empty.records[0]!.map((s) => s.length) : [], [0], 'the single zero-length string');
  });

  it('reads A, AAAA, MX and PTR', async () => {
    const r = createWireResolver({ servers: [wire.server], timeoutMs: 2000 });
    assert.deepEqual(await r.a('host.example.org'), { kind: 'found', records: ['192.0.2.10', '192.0.2.11'], ttl: 60 });
    assert.deepEqual(await r.aaaa('host.example.org'), { kind: 'found', records: ['2001:db8::10'], ttl: 60 });
    assert.deepEqual(await r.mx('example.org'), { kind: 'found', records: [{ preference: 10, exchange: 'mx.example.org' }], ttl: 60 });
    assert.deepEqual(await r.ptr('10.2.0.192.in-addr.arpa'), { kind: 'found', records: ['host.example.org'], ttl: 60 });
  });

  it('a server that never answers is a temporary error within the time limit, and the next server is asked', async () => {
    const dead = createWireResolver({ servers: [silent.server], timeoutMs: 300 });
    const started = Date.now();
    const r = await dead.txt('txt.example.com');
    assert.equal(r.kind, 'temperror');
    assert.equal(r.kind === 'temperror' ? r.reason : '', 'dns timeout');
    assert.ok(Date.now() - started < 1500, 'bounded by timeoutMs');
    const fallback = createWireResolver({ servers: [silent.server, dnsmasq.server], timeoutMs: 1000 });
    assert.equal((await fallback.txt('txt.example.com')).kind, 'found');
  });

  it('refuses, before any query, a name with an empty label or a label over 63 octets, or over 253 in all', async () => {
    const r = createWireResolver({ servers: [wire.server], timeoutMs: 2000 });
    const before = wire.queries.udp;
    for (const name of ['a..example.org', `${'x'.repeat(64)}.example.org`, `${'abcdefgh.'.repeat(30)}org`, '']) {
      assert.equal((await r.txt(name)).kind, 'invalid-name', name);
    }
    assert.equal(wire.queries.udp, before, 'nothing was sent');
    assert.equal(nameProblem(`${'x'.repeat(63)}.example.org`), null);
    assert.equal(nameProblem('example.org.'), null, 'a trailing dot is the root');
  });
});
