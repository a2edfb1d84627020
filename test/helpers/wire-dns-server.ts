/**
 * An authoritative DNS server on 127.0.0.1 (UDP and TCP, real sockets), for
 * what dnsmasq's configuration cannot hold: names with `%`, `/` or a space
 * in a label, TXT strings with any octet. It answers like a zone's server:
 * NXDOMAIN for a name it does not have, NODATA for a type it does not have,
 * and over UDP a truncated (TC) answer when the answer exceeds 512 octets,
 * so the client must ask again over TCP. It counts the queries it gets.
 */
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import packet from 'dns-packet';

export interface ZoneRecord {
  readonly type: 'TXT' | 'A' | 'AAAA' | 'MX' | 'PTR';
  /** TXT: the character-strings as octets; A/AAAA/PTR: text; MX: { preference, exchange }. */
  readonly data: readonly Buffer[] | string | { readonly preference: number; readonly exchange: string };
}

export interface WireDnsServer {
  readonly server: string;
  readonly queries: { udp: number; tcp: number };
  stop(): Promise<void>;
}

export async function startWireDns(zone: ReadonlyMap<string, readonly ZoneRecord[]>): Promise<WireDnsServer> {
  const lower = new Map([...zone].map(([name, records]) => [name.toLowerCase(), records]));
  const queries = { udp: 0, tcp: 0 };
  const answer = (query: Buffer, udp: boolean): Buffer | undefined => {
    let q;
    try {
      q = packet.decode(query);
    } catch {
      return undefined;
    }
    const question = q.questions?.[0];
    if (!question) return undefined;
    const records = lower.get(question.name.toLowerCase());
    const matching = (records ?? []).filter((r) => r.type === question.type);
    const reply = (answers: packet.Answer[], rcode: number, tc = false): Buffer =>
      packet.encode({ type: 'response', id: q.id ?? 0, flags: packet.AUTHORITATIVE_ANSWER | rcode | (tc ? packet.TRUNCATED_RESPONSE : 0), questions: [question], answers });
    if (!records) return reply([], 3);
    const answers = matching.map((r) => ({ type: r.type, name: question.name, ttl: 60, data: r.data }) as packet.Answer);
    const full = reply(answers, 0);
    return udp && full.length > 512 ? reply([], 0, true) : full;
  };

  const sockets = new Set<Socket>();
  const tcp = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffer = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buffer = Buffer.concat([buffer, d]);
      while (buffer.length >= 2 && buffer.length >= 2 + buffer.readUInt16BE(0)) {
        const size = buffer.readUInt16BE(0);
        queries.tcp++;
        const out = answer(buffer.subarray(2, 2 + size), false);
        buffer = buffer.subarray(2 + size);
        if (!out) continue;
        const framed = Buffer.alloc(2 + out.length);
        framed.writeUInt16BE(out.length, 0);
        out.copy(framed, 2);
        socket.write(framed);
      }
    });
  });
  // UDP on a free port, then TCP on the same number, as a DNS server has; that TCP port may be taken: a few tries.
  for (let attempt = 0; ; attempt++) {
    const udp = createSocket('udp4');
    udp.on('message', (msg, from) => {
      queries.udp++;
      const out = answer(msg, true);
      if (out) udp.send(out, from.port, from.address);
    });
    udp.bind(0, '127.0.0.1');
    await once(udp, 'listening');
    const { port } = udp.address();
    const bound = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!bound) {
      udp.close();
      if (attempt >= 4) throw new Error('wire DNS test server: no port free for both UDP and TCP after 5 tries');
      continue;
    }
    return started(udp, port);
  }

  function started(udp: ReturnType<typeof createSocket>, port: number): WireDnsServer {
    return {
      server: `127.0.0.1:${port}`,
      queries,
      async stop() {
        udp.close();
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => tcp.close(() => resolve()));
      },
    };
  }
}
