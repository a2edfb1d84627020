/**
 * A minimal SMTP next hop on raw sockets, for the load test: it answers the
 * envelope, reads DATA (undoing dot-stuffing), and then, as `fate` decides per
 * message, accepts it (counted as delivered only once 250 is written),
 * refuses it with 451, or drops the connection without a reply.
 */
import { createServer, type Socket } from 'node:net';

export type Fate = 'accept' | 'refuse' | 'drop';

export interface FaultyHop {
  readonly port: number;
  /** Messages answered 250, in order. */
  readonly delivered: Buffer[];
  stop(): Promise<void>;
}

export async function startFaultyHop(fate: (message: Buffer) => Fate): Promise<FaultyHop> {
  const delivered: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffer: Buffer = Buffer.alloc(0);
    let inData = false;
    let lines: Buffer[] = [];
    socket.write('220 faulty ESMTP\r\n');
    socket.on('data', (d: Buffer) => {
      buffer = buffer.length ? Buffer.concat([buffer, d]) : d;
      let nl: number;
      while ((nl = buffer.indexOf('\r\n')) !== -1) {
        const line = buffer.subarray(0, nl);
        buffer = buffer.subarray(nl + 2);
        if (inData) {
          if (line.length === 1 && line[0] === 0x2e) {
            inData = false;
            const message = Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\r\n')]));
            lines = [];
            const f = fate(message);
            if (f === 'drop') {
              socket.destroy();
              return;
            }
            if (f === 'refuse') socket.write('451 4.3.0 Temporary trouble, try later\r\n');
            else socket.write('250 2.0.0 Ok\r\n', () => delivered.push(message));
          } else {
            lines.push(line[0] === 0x2e ? line.subarray(1) : line);
          }
          continue;
        }
        const cmd = line.toString('latin1').toUpperCase();
        if (cmd.startsWith('EHLO')) socket.write('250-faulty\r\n250-PIPELINING\r\n250 8BITMIME\r\n');
        else if (cmd.startsWith('DATA')) {
          inData = true;
          socket.write('354 go ahead\r\n');
        } else if (cmd.startsWith('QUIT')) socket.end('221 bye\r\n');
        else socket.write('250 ok\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as { port: number }).port,
    delivered,
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
