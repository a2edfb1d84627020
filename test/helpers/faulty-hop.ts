/**
 * A minimal SMTP next hop on raw sockets, for the load test: it answers the
 * envelope, reads DATA (undoing dot-stuffing), and then, as `fate` decides per
 * message, accepts it (counted as delivered only once 250 is written),
 * refuses it with 451, or drops the connection without a reply.
 */
import { startRawHop } from './raw-hop.js';

export type Fate = 'accept' | 'refuse' | 'drop';

export interface FaultyHop {
  readonly port: number;
  /** Messages answered 250, in order. */
  readonly delivered: Buffer[];
  stop(): Promise<void>;
}

export async function startFaultyHop(fate: (message: Buffer) => Fate): Promise<FaultyHop> {
  const delivered: Buffer[] = [];
  const hop = await startRawHop('faulty', ['PIPELINING', '8BITMIME'], () => {
    let pending: Buffer = Buffer.alloc(0);
    const lines: Buffer[] = [];
    return (socket, chunk) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let nl: number;
      while ((nl = pending.indexOf('\r\n')) !== -1) {
        const line = pending.subarray(0, nl);
        pending = pending.subarray(nl + 2);
        if (!(line.length === 1 && line[0] === 0x2e)) {
          lines.push(line[0] === 0x2e ? line.subarray(1) : line);
          continue;
        }
        const message = Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\r\n')]));
        const f = fate(message);
        if (f === 'drop') socket.destroy();
        else if (f === 'refuse') socket.write('451 4.3.0 Temporary trouble, try later\r\n');
        else socket.write('250 2.0.0 Ok\r\n', () => delivered.push(message));
        return pending;
      }
      return undefined;
    };
  });
  return { port: hop.port, delivered, stop: () => hop.stop() };
}
