/**
 * A client on a raw socket, for what a well-behaved client never does: bytes
 * that are not commands, a byte at a time, a message cut off, an abrupt close.
 * It records every reply line, and checks each is well-formed SMTP.
 */
import { connect, type Socket } from 'node:net';

export interface RawClient {
  readonly socket: Socket;
  /** Every reply line so far, CRLF removed. */
  readonly lines: string[];
  /** Lines that are not `NNN[ -]text` (should stay empty). */
  readonly malformed: string[];
  /** Resolves once the connection has closed. */
  readonly closed: Promise<void>;
  isClosed(): boolean;
  /** The next complete reply (its lines), within `timeoutMs`. */
  reply(timeoutMs?: number): Promise<string[]>;
  write(data: string | Buffer): void;
}

const REPLY_LINE = /^[2-5]\d\d([ -].*)?$/;

export async function rawClient(port: number, localAddress = '127.0.0.1'): Promise<RawClient> {
  const socket = connect({ host: '127.0.0.1', port, localAddress });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return clientOn(socket);
}

/** The same client on a connected stream of one's own (a TLS socket after STARTTLS, say). */
export function clientOn(socket: Socket): RawClient {
  const lines: string[] = [];
  const malformed: string[] = [];
  const replies: string[][] = [];
  let current: string[] = [];
  let waiting: (() => void) | undefined;
  let buffer = '';
  let closed = false;
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => {
    buffer += d;
    let nl: number;
    while ((nl = buffer.indexOf('\r\n')) !== -1) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 2);
      lines.push(line);
      if (!REPLY_LINE.test(line)) malformed.push(line);
      current.push(line);
      if (line[3] !== '-') {
        replies.push(current);
        current = [];
        waiting?.();
      }
    }
  });
  const closedPromise = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closed = true;
      waiting?.();
      resolve();
    }),
  );
  return {
    socket,
    lines,
    malformed,
    closed: closedPromise,
    isClosed: () => closed,
    async reply(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (replies.length === 0) {
        if (closed) throw new Error(`connection closed; lines so far: ${JSON.stringify(lines)}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms; lines so far: ${JSON.stringify(lines)}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiting = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        waiting = undefined;
      }
      return replies.shift()!;
    },
    write(data) {
      if (!closed) socket.write(data);
    },
  };
}

/**
 * Resolves once something on `port` greets with 220 (a balancer started in
 * the background is listening and its backend answers), within `timeoutMs`.
 */
export async function untilGreeting(port: number, localAddress = '127.0.0.1', timeoutMs = 15_000, detail: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const c = await rawClient(port, localAddress);
      const r = await c.reply(2000);
      c.socket.destroy();
      if (/^220 /.test(r[0] ?? '')) return;
      last = r.join(' | ');
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nothing greeted on port ${port} within ${timeoutMs} ms (last: ${last})\n${detail()}`);
}

/** Sends `text` one byte every `everyMs` until the connection closes (or the text runs out). */
export function trickle(c: RawClient, text: string, everyMs: number): Promise<void> {
  return new Promise((resolve) => {
    let k = 0;
    const timer = setInterval(() => {
      if (c.isClosed() || k >= text.length) {
        clearInterval(timer);
        resolve();
        return;
      }
      c.write(text[k++]!);
    }, everyMs);
  });
}
