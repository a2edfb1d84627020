/**
 * A DNS client that speaks the wire format itself (dns-packet encodes and
 * decodes; sockets and retries are ours), for what node:dns cannot do and
 * SPF needs (RFC 7208 §4.6, §7): names with any printable octet in a label
 * (macro expansions put `%`, `/`, `:` or a space there, which c-ares refuses
 * with EBADNAME), and TXT data as octets, so that a record with a byte over
 * 0x7f is seen as it is rather than decoded by guess.
 *
 * UDP first, TCP when the answer comes back truncated; each configured
 * server in turn within one overall time limit; NXDOMAIN and NODATA kept
 * apart from a timeout or a failing server (the first two are answers, the
 * others temporary). A name that cannot be asked (an empty label, a label
 * over 63 octets, over 253 in all) is refused before any query.
 */
import { createSocket } from 'node:dgram';
import { getServers } from 'node:dns';
import { connect, isIP } from 'node:net';
import { randomInt } from 'node:crypto';
import packet from 'dns-packet';

export type WireAnswer<T> =
  | { readonly kind: 'found'; readonly records: readonly T[]; readonly ttl: number }
  /** The name does not exist (RCODE 3). */
  | { readonly kind: 'nxdomain' }
  /** The name exists, with no record of this type. */
  | { readonly kind: 'nodata' }
  /** No answer in time, or a server failure (SERVFAIL, REFUSED): ask again later. */
  | { readonly kind: 'temperror'; readonly reason: 'dns timeout' | 'dns error'; readonly detail: string }
  /** A name no DNS query can carry: never sent. */
  | { readonly kind: 'invalid-name'; readonly detail: string };

export interface MxRecord {
  readonly preference: number;
  readonly exchange: string;
}

export interface WireResolver {
  /** Each record's character-strings, as octets. */
  txt(name: string): Promise<WireAnswer<readonly Buffer[]>>;
  a(name: string): Promise<WireAnswer<string>>;
  aaaa(name: string): Promise<WireAnswer<string>>;
  mx(name: string): Promise<WireAnswer<MxRecord>>;
  ptr(name: string): Promise<WireAnswer<string>>;
}

export interface WireOptions {
  /** `ip` or `ip:port` (`[v6]:port`); empty: the system's resolvers (/etc/resolv.conf). */
  readonly servers?: readonly string[];
  /** For one lookup, all servers and a TCP retry included. */
  readonly timeoutMs?: number;
}

interface Server {
  readonly host: string;
  readonly port: number;
}

function parseServer(text: string): Server {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) return { host: bracketed[1]!, port: Number(bracketed[2] ?? 53) };
  if (isIP(text) !== 0) return { host: text, port: 53 };
  const at = text.lastIndexOf(':');
  return { host: text.slice(0, at), port: Number(text.slice(at + 1)) };
}

/** Why a name cannot be asked, or null when it can (octets counted in UTF-8, as they go on the wire). */
export function nameProblem(name: string): string | null {
  const n = name.replace(/\.$/, '');
  if (n === '') return 'the name is empty';
  if (Buffer.byteLength(n) > 253) return `the name is ${Buffer.byteLength(n)} octets long (at most 253)`;
  for (const label of n.split('.')) {
    if (label === '') return `"${name}" has an empty label`;
    if (Buffer.byteLength(label) > 63) return `"${label.slice(0, 20)}..." is a label of ${Buffer.byteLength(label)} octets (at most 63)`;
  }
  return null;
}

type Decoded = ReturnType<typeof packet.decode>;
type Kind = 'TXT' | 'A' | 'AAAA' | 'MX' | 'PTR';

class Timeout extends Error {}

function askUdp(server: Server, query: Buffer, id: number, ms: number): Promise<Decoded> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
    const timer = setTimeout(() => done(new Timeout(`no answer from ${server.host}:${server.port} within ${ms} ms`)), ms);
    let finished = false;
    // Once only: a socket error after the timeout (or the answer) would close it twice, which throws.
    const done = (err: Error | null, answer?: Decoded): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(answer!);
    };
    socket.on('error', (err) => done(err));
    socket.on('message', (msg) => {
      let decoded: Decoded;
      try {
        decoded = packet.decode(msg);
      } catch {
        return; // not a DNS message: keep waiting for the real one
      }
      // Only the answer to our own question (RFC 5452): anything else is ignored.
      if (decoded.id === id && decoded.type === 'response') done(null, decoded);
    });
    socket.send(query, server.port, server.host, (err) => {
      if (err) done(err);
    });
  });
}

function askTcp(server: Server, query: Buffer, ms: number): Promise<Decoded> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: server.host, port: server.port });
    const timer = setTimeout(() => done(new Timeout(`no answer over TCP from ${server.host}:${server.port} within ${ms} ms`)), ms);
    let buffer = Buffer.alloc(0);
    const done = (err: Error | null, answer?: Decoded): void => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(answer!);
    };
    socket.on('error', (err) => done(err));
    socket.on('data', (d: Buffer) => {
      buffer = Buffer.concat([buffer, d]);
      if (buffer.length < 2) return;
      const size = buffer.readUInt16BE(0);
      if (buffer.length < 2 + size) return;
      try {
        done(null, packet.decode(buffer.subarray(2, 2 + size)));
      } catch (err) {
        done(err instanceof Error ? err : new Error(String(err)));
      }
    });
    const framed = Buffer.alloc(2 + query.length);
    framed.writeUInt16BE(query.length, 0);
    query.copy(framed, 2);
    socket.write(framed);
  });
}

export function createWireResolver(options: WireOptions = {}): WireResolver {
  const timeoutMs = options.timeoutMs ?? 5000;
  const configured = options.servers && options.servers.length > 0 ? options.servers : getServers();
  const servers = configured.map(parseServer);

  async function lookup<T>(name: string, type: Kind, pick: (answers: NonNullable<Decoded['answers']>) => T[]): Promise<WireAnswer<T>> {
    const problem = nameProblem(name);
    if (problem !== null) return { kind: 'invalid-name', detail: problem };
    if (servers.length === 0) return { kind: 'temperror', reason: 'dns error', detail: 'no DNS server configured' };
    const deadline = Date.now() + timeoutMs;
    let last: WireAnswer<T> = { kind: 'temperror', reason: 'dns timeout', detail: `no answer for ${name} within ${timeoutMs} ms` };
    for (const [k, server] of servers.entries()) {
      // The time left, shared among the servers not yet asked.
      const share = Math.max(1, Math.floor((deadline - Date.now()) / (servers.length - k)));
      const id = randomInt(0, 65536);
      const query = packet.encode({ type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
      try {
        let answer = await askUdp(server, query, id, share);
        // RFC 7766: a truncated answer is asked again over TCP.
        if (answer.flag_tc) answer = await askTcp(server, query, Math.max(1, deadline - Date.now()));
        const rcode = (answer.flags ?? 0) & 0xf;
        if (rcode === 3) return { kind: 'nxdomain' };
        if (rcode !== 0) {
          last = { kind: 'temperror', reason: 'dns error', detail: `RCODE ${rcode} from ${server.host}:${server.port} for ${name}` };
          continue;
        }
        const records = pick(answer.answers ?? []);
        if (records.length === 0) return { kind: 'nodata' };
        const ttl = Math.min(...(answer.answers ?? []).map((a) => ('ttl' in a && typeof a.ttl === 'number' ? a.ttl : 0)));
        return { kind: 'found', records, ttl };
      } catch (err) {
        last = err instanceof Timeout ? { kind: 'temperror', reason: 'dns timeout', detail: err.message } : { kind: 'temperror', reason: 'dns error', detail: `${(err as NodeJS.ErrnoException).code ?? String(err)} from ${server.host}:${server.port} for ${name}` };
      }
    }
    return last;
  }

  const ofType = <T>(type: Kind, data: (d: unknown) => T) => (answers: NonNullable<Decoded['answers']>): T[] => answers.filter((a) => a.type === type).map((a) => data((a as { data: unknown }).data));
  return {
    txt: (name) => lookup(name, 'TXT', ofType('TXT', (d) => (Array.isArray(d) ? d : [d]).map((s: unknown) => (Buffer.isBuffer(s) ? s : Buffer.from(String(s), 'latin1'))))),
    a: (name) => lookup(name, 'A', ofType('A', String)),
    aaaa: (name) => lookup(name, 'AAAA', ofType('AAAA', String)),
    mx: (name) => lookup(name, 'MX', ofType('MX', (d) => ({ preference: (d as { preference: number }).preference, exchange: (d as { exchange: string }).exchange }))),
    ptr: (name) => lookup(name, 'PTR', ofType('PTR', String)),
  };
}
