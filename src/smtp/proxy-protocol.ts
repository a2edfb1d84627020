/**
 * The PROXY protocol header a load balancer sends before the client's bytes
 * (HAProxy's proxy-protocol.txt): version 1, one text line, and version 2,
 * binary. Pure: bytes in, the original client out. smtp-server reads
 * version 1 only, hence this.
 */
import { isIP } from 'node:net';

export type ProxyHeader =
  /** More bytes are needed to decide. */
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string }
  /**
   * `consumed`: the header's length; the client's bytes follow it.
   * `source`: the original client; undefined for a health check of the
   * balancer's own (v1 UNKNOWN, v2 LOCAL), which speaks for itself.
   */
  | { readonly kind: 'ok'; readonly consumed: number; readonly version: 1 | 2; readonly source: { readonly address: string; readonly port: number } | undefined };

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Version 1's longest line, CRLF included. */
export const V1_MAX = 107;
/** What a v2 header may carry in TLVs beyond the addresses: more is refused, not buffered. */
const V2_MAX_LENGTH = 1024;

export function parseProxyHeader(buf: Buffer): ProxyHeader {
  if (buf.length === 0) return { kind: 'incomplete' };
  const prefix = Math.min(buf.length, V2_SIGNATURE.length);
  if (buf.subarray(0, prefix).equals(V2_SIGNATURE.subarray(0, prefix))) return buf.length < 16 ? { kind: 'incomplete' } : parseV2(buf);
  const v1 = 'PROXY ';
  const head = buf.toString('latin1', 0, Math.min(buf.length, v1.length));
  if (head !== v1.slice(0, head.length)) return { kind: 'invalid', reason: 'no PROXY header (neither "PROXY " nor the version 2 signature)' };
  return parseV1(buf);
}

function parseV1(buf: Buffer): ProxyHeader {
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end === -1) return buf.length >= V1_MAX ? { kind: 'invalid', reason: `a version 1 line longer than ${V1_MAX} octets` } : { kind: 'incomplete' };
  if (end + 2 > V1_MAX) return { kind: 'invalid', reason: `a version 1 line longer than ${V1_MAX} octets` };
  const parts = buf.toString('latin1', 0, end).split(' ');
  const consumed = end + 2;
  if (parts[1] === 'UNKNOWN') return { kind: 'ok', consumed, version: 1, source: undefined };
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6')) return { kind: 'invalid', reason: 'a version 1 line is "PROXY TCP4|TCP6 source destination sport dport"' };
  const [, family, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const want = family === 'TCP4' ? 4 : 6;
  if (isIP(src) !== want || isIP(dst) !== want) return { kind: 'invalid', reason: `addresses that are not ${family}` };
  const port = (p: string): number | null => (/^(0|[1-9][0-9]{0,4})$/.test(p) && Number(p) <= 65535 ? Number(p) : null);
  const sp = port(sport);
  if (sp === null || port(dport) === null) return { kind: 'invalid', reason: 'a port that is not 0 to 65535' };
  return { kind: 'ok', consumed, version: 1, source: { address: src.toLowerCase(), port: sp } };
}

function parseV2(buf: Buffer): ProxyHeader {
  const verCmd = buf[12]!;
  const fam = buf[13]!;
  const length = buf.readUInt16BE(14);
  if (verCmd >> 4 !== 2) return { kind: 'invalid', reason: `version ${verCmd >> 4} (expected 2)` };
  const command = verCmd & 0x0f;
  if (command !== 0 && command !== 1) return { kind: 'invalid', reason: `command ${command} (LOCAL or PROXY expected)` };
  if (length > V2_MAX_LENGTH) return { kind: 'invalid', reason: `a version 2 header of ${length} octets (at most ${V2_MAX_LENGTH})` };
  if (buf.length < 16 + length) return { kind: 'incomplete' };
  const consumed = 16 + length;
  if (command === 0) return { kind: 'ok', consumed, version: 2, source: undefined };
  const body = buf.subarray(16, consumed);
  switch (fam) {
    case 0x11: // TCP over IPv4
    case 0x12: {
      if (length < 12) return { kind: 'invalid', reason: 'an IPv4 address block shorter than 12 octets' };
      return { kind: 'ok', consumed, version: 2, source: { address: [...body.subarray(0, 4)].join('.'), port: body.readUInt16BE(8) } };
    }
    case 0x21: // TCP over IPv6
    case 0x22: {
      if (length < 36) return { kind: 'invalid', reason: 'an IPv6 address block shorter than 36 octets' };
      const groups: string[] = [];
      for (let k = 0; k < 16; k += 2) groups.push(body.readUInt16BE(k).toString(16));
      return { kind: 'ok', consumed, version: 2, source: { address: compressIpv6(groups), port: body.readUInt16BE(32) } };
    }
    case 0x00:
      // UNSPEC: the balancer could not say; treated as its own connection.
      return { kind: 'ok', consumed, version: 2, source: undefined };
    default:
      return { kind: 'invalid', reason: `address family 0x${fam.toString(16)} (TCP over IPv4 or IPv6 expected)` };
  }
}

/** RFC 5952's text form: the longest run of zero groups (two or more) becomes `::`. */
function compressIpv6(groups: readonly string[]): string {
  let best = { at: -1, len: 0 };
  for (let k = 0; k < groups.length; ) {
    if (groups[k] !== '0') {
      k++;
      continue;
    }
    let j = k;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - k > best.len && j - k >= 2) best = { at: k, len: j - k };
    k = j;
  }
  if (best.at === -1) return groups.join(':');
  return `${groups.slice(0, best.at).join(':')}::${groups.slice(best.at + best.len).join(':')}`;
}
