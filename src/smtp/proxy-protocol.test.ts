import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseProxyHeader } from './proxy-protocol.js';

const SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** A v2 header as HAProxy's send-proxy-v2 writes it, with optional TLVs after the addresses. */
function v2(command: number, family: number, addresses: Buffer, tlvs = Buffer.alloc(0)): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(addresses.length + tlvs.length);
  return Buffer.concat([SIG, Buffer.from([0x20 | command, family]), len, addresses, tlvs]);
}

function ipv4Block(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12);
  Buffer.from(src).copy(b, 0);
  Buffer.from(dst).copy(b, 4);
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}

describe('PROXY protocol headers', () => {
  it('version 1: TCP4 and TCP6 give the client; UNKNOWN is the balancer itself; the rest of the bytes are left', () => {
    const line = Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r\nEHLO x\r\n');
    assert.deepEqual(parseProxyHeader(line), { kind: 'ok', consumed: 44, version: 1, source: { address: '192.0.2.7', port: 56324 } });
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY TCP6 2001:DB8::7 2001:db8::1 4000 25\r\n')), { kind: 'ok', consumed: 44, version: 1, source: { address: '2001:db8::7', port: 4000 } });
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { kind: 'ok', consumed: 15, version: 1, source: undefined });
  });

  it('version 1: a partial line waits; a malformed one is refused', () => {
    for (const partial of ['P', 'PROXY TCP4 192.0.2.7', 'PROXY TCP4 192.0.2.7 198.51.100.1 1 25\r']) assert.equal(parseProxyHeader(Buffer.from(partial)).kind, 'incomplete', partial);
    for (const bad of [
      'EHLO client.example\r\n',
      'PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n',
      'PROXY UDP4 192.0.2.7 198.51.100.1 1 25\r\n',
      'PROXY TCP4 2001:db8::1 198.51.100.1 1 25\r\n',
      'PROXY TCP4 192.0.2.777 198.51.100.1 1 25\r\n',
      'PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n',
      'PROXY TCP4 192.0.2.7 198.51.100.1 01 25\r\n',
      `PROXY TCP4 ${'1'.repeat(120)}`,
    ]) {
      assert.equal(parseProxyHeader(Buffer.from(bad)).kind, 'invalid', bad);
    }
  });

  it('version 2: TCP over IPv4 and IPv6, TLVs skipped, LOCAL and UNSPEC for the balancer\'s own checks', () => {
    const four = v2(1, 0x11, ipv4Block([192, 0, 2, 7], [198, 51, 100, 1], 56324, 25), Buffer.from([0x01, 0x00, 0x02, 0x68, 0x32]));
    assert.deepEqual(parseProxyHeader(Buffer.concat([four, Buffer.from('EHLO')])), { kind: 'ok', consumed: four.length, version: 2, source: { address: '192.0.2.7', port: 56324 } });
    const six = Buffer.alloc(36);
    Buffer.from('20010db8000000000000000000000007', 'hex').copy(six, 0);
    Buffer.from('20010db8000000000000000000000001', 'hex').copy(six, 16);
    six.writeUInt16BE(4000, 32);
    six.writeUInt16BE(25, 34);
    assert.deepEqual(parseProxyHeader(v2(1, 0x21, six)), { kind: 'ok', consumed: 52, version: 2, source: { address: '2001:db8::7', port: 4000 } });
    assert.deepEqual(parseProxyHeader(v2(0, 0x00, Buffer.alloc(0))), { kind: 'ok', consumed: 16, version: 2, source: undefined });
    assert.deepEqual(parseProxyHeader(v2(1, 0x00, Buffer.alloc(0))), { kind: 'ok', consumed: 16, version: 2, source: undefined });
  });

  it('version 2: partial headers wait; a wrong version, command, family, short block or oversized header is refused', () => {
    const good = v2(1, 0x11, ipv4Block([192, 0, 2, 7], [198, 51, 100, 1], 1, 25));
    for (const n of [1, 11, 12, 15, 16, good.length - 1]) assert.equal(parseProxyHeader(good.subarray(0, n)).kind, 'incomplete', String(n));
    const bad = [
      Buffer.concat([SIG, Buffer.from([0x11, 0x11, 0, 12]), Buffer.alloc(12)]),
      Buffer.concat([SIG, Buffer.from([0x22, 0x11, 0, 12]), Buffer.alloc(12)]),
      v2(1, 0x31, Buffer.alloc(216)),
      v2(1, 0x11, Buffer.alloc(8)),
      v2(1, 0x21, Buffer.alloc(20)),
      Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0x08, 0x00])]),
    ];
    for (const [k, b] of bad.entries()) assert.equal(parseProxyHeader(b).kind, 'invalid', String(k));
  });
});
