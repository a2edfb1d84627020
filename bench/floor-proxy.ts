/**
 * The floor under `out`: the least an SMTP proxy on raw sockets can do per
 * message while keeping our reply contract (README, "Transactions are
 * passed through"), so that what `out` costs beyond it is what our listener,
 * pipeline and logging add. Per client session one next-hop connection,
 * opened with the session; MAIL is taken at once and sent with the first
 * RCPT, whose reply is the next hop's; DATA is answered 354 by us, the
 * message read to its end (data-mode.ts's scan, unstuffing), optionally
 * signed with our engine, sent as one BDAT LAST, and the next hop's reply is
 * the client's. Four writes and four reads a message, the fewest that
 * contract allows.
 *
 * Not a proxy anyone should run: no limits, deadlines, TLS, XFORWARD, spool,
 * log, self_check or error paths beyond "451 and close". It assumes the next
 * hop offers PIPELINING and CHUNKING, as bench/sink.ts and Postfix do.
 *
 * Prints its port.
 * Usage: node floor-proxy.js none|sign RELAY_PORT [KEY_FILE]
 *   sign: one RSA-2048 signature by d=example.com s=bench, relaxed/relaxed,
 *   the engine's default header list.
 */
import { readFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { parsePrivateKey, PreparedSigner, signMessage } from '../src/dkim/index.js';
import { scanData } from '../src/smtp/data-mode.js';

const [mode = 'none', relayPort = '0', keyFile] = process.argv.slice(2);
const signer = mode === 'sign' ? prepareSigner(keyFile) : undefined;

function prepareSigner(file: string | undefined): PreparedSigner {
  const parsed = parsePrivateKey(readFileSync(file ?? '', 'utf8'));
  if (!parsed.ok) throw new Error(parsed.message);
  return PreparedSigner.prepare({ domain: 'example.com', selector: 'bench', key: parsed.key, algorithm: 'rsa-sha256', canonicalization: { header: 'relaxed', body: 'relaxed' } });
}

interface Reply {
  readonly code: number;
  readonly text: string;
}

/** The next hop's side of a session: its replies in the order they come, each to the caller asking longest. */
class Hop {
  private buffer = '';
  private readonly waiting: ((r: Reply) => void)[] = [];
  /** Replies that came before anyone asked (a pipelined MAIL and RCPT answered in one read). */
  private readonly unclaimed: Reply[] = [];
  readonly greeted: Promise<Reply>;
  readonly socket: Socket;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    this.greeted = this.reply();
    socket.on('data', (chunk: Buffer) => this.read(chunk));
  }

  reply(): Promise<Reply> {
    const ready = this.unclaimed.shift();
    return ready ? Promise.resolve(ready) : new Promise((resolve) => this.waiting.push(resolve));
  }

  private read(chunk: Buffer): void {
    this.buffer += chunk.toString('latin1');
    let start = 0;
    for (;;) {
      const nl = this.buffer.indexOf('\r\n', start);
      if (nl === -1) break;
      // The last line of a reply has a space (or nothing) after its code.
      if (this.buffer[start + 3] !== '-') {
        const last = this.buffer.slice(start, nl);
        this.buffer = this.buffer.slice(nl + 2);
        start = 0;
        const reply = { code: Number(last.slice(0, 3)), text: last };
        const waiter = this.waiting.shift();
        if (waiter) waiter(reply);
        else this.unclaimed.push(reply);
      } else start = nl + 2;
    }
  }
}

function session(client: Socket): void {
  client.setNoDelay(true);
  const hop = new Hop(connect(Number(relayPort), '127.0.0.1'));
  const ready = hop.greeted.then(() => {
    hop.socket.write('EHLO floor.bench\r\n');
    return hop.reply();
  });
  const fail = (): void => {
    client.end('451 4.4.1 Next hop is down\r\n');
    hop.socket.destroy();
  };
  hop.socket.on('error', fail);
  client.on('error', () => hop.socket.destroy());
  client.on('close', () => hop.socket.end('QUIT\r\n'));

  let input: Buffer = Buffer.alloc(0);
  let mailFrom: string | undefined;
  let mailSent = false;
  let accepted = 0;
  let inData: { parts: Buffer[]; keep: Buffer; atStart: boolean } | undefined;
  let out: string[] = [];
  let busy = false;

  const flush = (): void => {
    if (out.length > 0) client.write(`${out.join('\r\n')}\r\n`);
    out = [];
  };

  /** Takes what the client sent, in order; pauses at each step that waits for the next hop. */
  async function pump(): Promise<void> {
    if (busy) return;
    busy = true;
    try {
      for (;;) {
        if (inData) {
          const scan = scanData(inData.keep.length > 0 ? Buffer.concat([inData.keep, input]) : input, inData.atStart);
          inData.parts.push(...scan.pieces);
          if (!scan.rest) {
            inData.keep = scan.keep;
            inData.atStart = scan.atStart;
            input = Buffer.alloc(0);
            break;
          }
          input = scan.rest;
          const body = Buffer.concat(inData.parts);
          inData = undefined;
          const headers = signer ? signMessage(body, [signer], Math.floor(Date.now() / 1000)).join('') : '';
          const size = Buffer.byteLength(headers, 'latin1') + body.length;
          hop.socket.write(Buffer.concat([Buffer.from(`BDAT ${size} LAST\r\n${headers}`, 'latin1'), body]));
          const done = await hop.reply();
          out.push(done.text);
          mailFrom = undefined;
          mailSent = false;
          accepted = 0;
          continue;
        }
        const nl = input.indexOf('\r\n');
        if (nl === -1) break;
        const line = input.toString('latin1', 0, nl);
        input = input.subarray(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') out.push('250-floor.bench', '250-PIPELINING', '250-8BITMIME', '250 SIZE 104857600');
        else if (verb === 'MAIL') {
          await ready;
          mailFrom = line;
          out.push('250 2.1.0 Ok');
        } else if (verb === 'RCPT') {
          if (mailFrom === undefined) {
            out.push('503 5.5.1 MAIL first');
            continue;
          }
          const first = !mailSent;
          mailSent = true;
          // MAIL's reply waits with RCPT's: the client pipelined them (RFC 2920), or it would be waiting for MAIL's.
          hop.socket.write(first ? `${mailFrom}\r\n${line}\r\n` : `${line}\r\n`);
          const mail = first ? await hop.reply() : undefined;
          const rcpt = await hop.reply();
          if (mail && mail.code !== 250) out.push(mail.text);
          else {
            if (rcpt.code === 250) accepted++;
            out.push(rcpt.text);
          }
        } else if (verb === 'DATA') {
          if (accepted === 0) out.push('554 5.5.1 No valid recipients');
          else {
            out.push('354 End data with <CR><LF>.<CR><LF>');
            inData = { parts: [], keep: Buffer.alloc(0), atStart: true };
          }
        } else if (verb === 'QUIT') {
          out.push('221 2.0.0 Bye');
          flush();
          client.end();
          return;
        } else out.push('250 2.0.0 Ok');
      }
      flush();
    } finally {
      busy = false;
    }
    // Input that came while we waited for the next hop.
    if (input.length > 0 && (inData || input.includes('\r\n'))) pump().catch(fail);
  }

  client.on('data', (chunk: Buffer) => {
    input = input.length > 0 ? Buffer.concat([input, chunk]) : chunk;
    pump().catch(fail);
  });
  client.write('220 floor.bench ESMTP\r\n');
}

const server = createServer(session);
server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`${typeof a === 'object' && a ? a.port : 0}\n`);
});
process.on('SIGTERM', () => process.exit(0));
