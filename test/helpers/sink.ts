/**
 * A capturing next hop on 127.0.0.1: an smtp-server that stores what it
 * accepts, offers XFORWARD, and misbehaves on request (refuse a recipient,
 * refuse DATA, drop the connection mid-DATA).
 */
import { startRawHop } from './raw-hop.js';
import { keepHeloAcrossXforward } from '../../src/smtp/listener.js';
import { SMTPServer } from 'smtp-server';

export interface Captured {
  readonly from: string;
  readonly to: string[];
  readonly data: Buffer;
  readonly xforward: Record<string, string>;
  readonly mailParams: Record<string, unknown>;
  /** Whether the message came over TLS (STARTTLS). */
  readonly secure: boolean;
  /** The server name the client asked for in TLS (SNI), if any. */
  readonly servername: string | undefined;
}

export interface SinkBehaviour {
  /** Senders refused at MAIL with 553. */
  refuseSender?: Set<string>;
  /** Recipients refused at RCPT with 550. */
  refuse?: Set<string>;
  /** Reply to DATA: a code to refuse with. */
  data?: (message: Buffer, index: number) => number | undefined;
}

export interface Sink {
  readonly port: number;
  readonly messages: Captured[];
  /** How many DATA transactions started (accepted or not). */
  dataStarted: number;
  behaviour: SinkBehaviour;
  stop(): Promise<void>;
}

/** An error smtp-server answers with this code and text. */
function refusal(code: number, text: string): Error {
  return Object.assign(new Error(text), { responseCode: code });
}

/** As Postfix does, a session keeps its EHLO name when XFORWARD says HELO=[UNAVAILABLE] (smtp-server alone would then refuse MAIL). */
class PostfixLikeServer extends SMTPServer {
  override connect(...args: Parameters<SMTPServer['connect']>): void {
    super.connect(...args);
    let last;
    for (const c of this.connections) last = c;
    if (last) keepHeloAcrossXforward(last);
  }
}

export async function startSink(behaviour: SinkBehaviour = {}, tls?: { key: Buffer; cert: Buffer }): Promise<Sink> {
  const sink: Sink = { port: 0, messages: [], dataStarted: 0, behaviour, stop: async () => {} };
  const server = new PostfixLikeServer({
    authOptional: true,
    disabledCommands: tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    ...(tls ?? {}),
    useXForward: true,
    hideENHANCEDSTATUSCODES: false,
    logger: false,
    onMailFrom(address, _session, callback) {
      callback(sink.behaviour.refuseSender?.has(address.address) ? refusal(553, `<${address.address}>: Sender address rejected: Access denied`) : undefined);
    },
    onRcptTo(address, _session, callback) {
      callback(sink.behaviour.refuse?.has(address.address) ? refusal(550, `<${address.address}>: Recipient address rejected: User unknown`) : undefined);
    },
    onData(stream, session, callback) {
      const index = sink.dataStarted++;
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const data = Buffer.concat(chunks);
        const act = sink.behaviour.data?.(data, index);
        if (typeof act === 'number') {
          callback(refusal(act, act === 452 ? 'Insufficient system storage' : 'Message refused'));
          return;
        }
        // smtp-server parses XFORWARD values (PORT a number, [UNAVAILABLE] false or an empty NAME): back to the wire form.
        const xf = (session as unknown as { xForward?: Map<string, string | number | false> }).xForward ?? new Map<string, string>();
        sink.messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          data,
          xforward: Object.fromEntries([...xf].filter(([k]) => !k.includes(':')).map(([k, v]) => [k, v === false || v === '' ? '[UNAVAILABLE]' : String(v)])),
          mailParams: session.envelope.mailFrom ? { ...(session.envelope.mailFrom.args as Record<string, unknown>) } : {},
          secure: session.secure,
          servername: (session as unknown as { servername?: string }).servername || undefined,
        });
        callback(null, `Ok: queued as SINK${index}`);
      });
    },
  });
  // A client that vanishes (a proxy killed mid-session) is a connection's end, as it is for Postfix, not the sink's.
  server.on('error', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const addr = server.server.address();
  (sink as { port: number }).port = typeof addr === 'object' && addr ? addr.port : 0;
  sink.stop = () => new Promise((resolve) => server.close(() => resolve()));
  return sink;
}

/**
 * A next hop that accepts the envelope and then, once DATA has begun and some
 * of the message has arrived, closes the connection without a reply.
 */
export async function startDroppingHop(): Promise<{ port: number; dataBytes: () => number; stop(): Promise<void> }> {
  let bytes = 0;
  const hop = await startRawHop('dropper', ['8BITMIME'], () => (socket, chunk) => {
    bytes += chunk.length;
    socket.destroy();
    return undefined;
  });
  return { port: hop.port, dataBytes: () => bytes, stop: () => hop.stop() };
}

/**
 * A next hop that, once DATA has brought it 64 KB, stops reading (so the
 * sender blocks on backpressure) until `resume()`; it records every octet of
 * DATA it ever reads, until the connection ends.
 */
export async function startStallingHop(): Promise<{
  port: number;
  /** Resolves when DATA has started arriving and reading has stopped. */
  stalled: Promise<void>;
  resume(): void;
  /** Resolves with everything read after DATA, once the connection has ended. */
  ended: Promise<Buffer>;
  stop(): Promise<void>;
}> {
  let resumeSocket: (() => void) | undefined;
  let onStalled!: () => void;
  let onEnded!: (data: Buffer) => void;
  const stalled = new Promise<void>((r) => (onStalled = r));
  const ended = new Promise<Buffer>((r) => (onEnded = r));
  const hop = await startRawHop('staller', ['8BITMIME'], (socket) => {
    const data: Buffer[] = [];
    let dataBytes = 0;
    socket.on('close', () => onEnded(Buffer.concat(data)));
    return (_socket, chunk) => {
      data.push(chunk);
      dataBytes += chunk.length;
      if (dataBytes >= 64 * 1024 && !resumeSocket) {
        socket.pause();
        resumeSocket = () => socket.resume();
        onStalled();
      }
      return undefined;
    };
  });
  return { port: hop.port, stalled, resume: () => resumeSocket?.(), ended, stop: () => hop.stop() };
}

/**
 * A next hop that records its command lines and the chunks they arrived in,
 * and answers each with `reply` (default "250 ok"); it offers what `extensions`
 * says (PIPELINING, CHUNKING or not) and accepts every message, keeping BDAT
 * chunks as they came.
 */
export async function startScriptedHop(
  extensions: readonly string[],
  reply: (line: string) => string | undefined = () => undefined,
): Promise<{ port: number; lines: string[]; chunks: string[]; delivered: () => number; bdat: Buffer[]; stop(): Promise<void> }> {
  const lines: string[] = [];
  const chunks: string[] = [];
  const bdat: Buffer[] = [];
  let delivered = 0;
  const hop = await startRawHop(
    'scripted',
    extensions,
    () => {
      let pending = Buffer.alloc(0);
      return (socket, chunk) => {
        pending = Buffer.concat([pending, chunk]);
        const end = pending.indexOf('\r\n.\r\n');
        if (end === -1) return undefined;
        delivered++;
        socket.write('250 2.0.0 Ok: queued\r\n');
        return pending.subarray(end + 5);
      };
    },
    {
      onChunk: (c) => chunks.push(c.toString('latin1')),
      bdat: (chunk, last) => {
        bdat.push(chunk);
        if (last) delivered++;
        return '250 2.0.0 Ok: queued';
      },
      reply: (line) => {
        lines.push(line);
        return reply(line);
      },
    },
  );
  return { port: hop.port, lines, chunks, delivered: () => delivered, bdat, stop: () => hop.stop() };
}
