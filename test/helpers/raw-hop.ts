/**
 * Next hops on raw sockets, for the failures smtp-server cannot stage (a
 * connection dropped mid-DATA, reading stopped mid-DATA, a seeded fate per
 * message). One command loop; each hop decides what DATA does.
 */
import { createServer, type Socket } from 'node:net';

export interface RawHop {
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Called with each chunk while in DATA. Return the bytes that follow the end
 * of the message (command parsing resumes with them), or undefined to stay in
 * DATA. The handler may write a reply, pause or destroy the socket.
 */
export type DataHandler = (socket: Socket, chunk: Buffer) => Buffer | undefined;

export interface RawHopOptions {
  /** Sees every chunk read outside DATA, as it arrived (to tell pipelined commands from single ones). */
  readonly onChunk?: (chunk: Buffer) => void;
  /** A reply for a command line other than EHLO, DATA, BDAT and QUIT; undefined for "250 ok". */
  readonly reply?: (line: string) => string | undefined;
  /** A whole BDAT chunk, exactly as many octets as announced; returns the reply. */
  readonly bdat?: (chunk: Buffer, last: boolean) => string;
}

/** Reads exactly `size` octets of a BDAT chunk, then replies; the octets after it are commands again. */
function bdatChunk(size: number, done: (chunk: Buffer) => string): DataHandler {
  const parts: Buffer[] = [];
  let have = 0;
  return (socket, chunk) => {
    const take = chunk.subarray(0, size - have);
    parts.push(take);
    have += take.length;
    if (have < size) return undefined;
    socket.write(`${done(Buffer.concat(parts))}\r\n`);
    return chunk.subarray(take.length);
  };
}

export async function startRawHop(name: string, extensions: readonly string[], data: (socket: Socket) => DataHandler, options: RawHopOptions = {}): Promise<RawHop> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let inData: DataHandler | undefined;
    let buffer: Buffer = Buffer.alloc(0);
    socket.write(`220 ${name} ESMTP\r\n`);
    const commands = (): void => {
      let nl: number;
      while (!inData && (nl = buffer.indexOf('\r\n')) !== -1) {
        const line = buffer.subarray(0, nl).toString('latin1').toUpperCase();
        buffer = buffer.subarray(nl + 2);
        if (line.startsWith('EHLO')) {
          socket.write([name, ...extensions].map((e, k, all) => `250${k === all.length - 1 ? ' ' : '-'}${e}\r\n`).join(''));
        } else if (line.startsWith('DATA')) {
          socket.write('354 go ahead\r\n');
          inData = data(socket);
          if (buffer.length > 0) {
            const rest = buffer;
            buffer = Buffer.alloc(0);
            feed(rest);
          }
        } else if (line.startsWith('BDAT ') && options.bdat) {
          const [, size = '', last] = line.split(' ');
          inData = bdatChunk(Number(size), (chunk) => options.bdat!(chunk, last === 'LAST'));
          const rest = buffer;
          buffer = Buffer.alloc(0);
          feed(rest);
        } else if (line.startsWith('QUIT')) {
          socket.end('221 bye\r\n');
        } else {
          socket.write(`${options.reply?.(line) ?? '250 ok'}\r\n`);
        }
      }
    };
    const feed = (chunk: Buffer): void => {
      if (!inData) {
        options.onChunk?.(chunk);
        buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk;
        commands();
        return;
      }
      const rest = inData(socket, chunk);
      if (rest !== undefined) {
        inData = undefined;
        buffer = rest;
        commands();
      }
    };
    socket.on('data', feed);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as { port: number }).port,
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
