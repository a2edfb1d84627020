/**
 * The SMTP client that talks to the next hop.
 *
 * Our own rather than nodemailer's SMTPConnection because the proxy needs
 * what that one does not give: XFORWARD (so Postfix logs keep the original
 * client), every reply exactly as the next hop sent it (one per RCPT, so a
 * refused recipient is refused to our client with the same code), commands
 * issued as our client's arrive (pipelined where the next hop offers it), and
 * message bytes written as they are (only dot-stuffed), never re-encoded.
 */
import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface Reply {
  readonly code: number;
  /** RFC 3463 code when the next hop gave one (`4.2.1`). */
  readonly enhanced: string | undefined;
  /** Text of every line, enhanced code removed. */
  readonly lines: readonly string[];
}

export const replyText = (r: Reply): string => r.lines.join(' ');
export const isPositive = (r: Reply): boolean => r.code >= 200 && r.code < 400;

/** The next hop could not be reached, stopped answering or broke the protocol. */
export class RelayError extends Error {
  override name = 'RelayError';
  readonly kind: 'connect' | 'timeout' | 'closed' | 'protocol' | 'tls';
  constructor(kind: RelayError['kind'], message: string, options?: ErrorOptions) {
    super(message, options);
    this.kind = kind;
  }
}

export interface NextHopOptions {
  readonly host: string;
  readonly port: number;
  /** Our name in EHLO/LHLO. */
  readonly name: string;
  /** Per command (and for connecting). */
  readonly timeoutMs: number;
  readonly lmtp?: boolean;
  readonly tls?: 'off' | 'opportunistic' | 'required';
}

const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)/;

export interface TransactionRequest {
  /** A previous transaction is still open on this connection. */
  readonly reset: boolean;
  readonly xforward: ReadonlyMap<string, string>;
  /** The whole MAIL FROM command line. */
  readonly mail: string;
  /** The first RCPT TO command line. */
  readonly rcpt: string;
}

export interface TransactionReplies {
  readonly mail: Reply;
  readonly rcpt: Reply | undefined;
}

export class NextHop {
  private socket: Socket | TLSSocket;
  private readonly options: NextHopOptions;
  private buffer = '';
  private lines: string[] = [];
  private waiter: { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | undefined;
  private failure: RelayError | undefined;
  /** EHLO keywords, upper case (`PIPELINING`, `XFORWARD`, `SIZE`...). */
  readonly extensions = new Map<string, string>();
  greeting: Reply | undefined;

  /** Resolves when the connection has closed, whoever closed it. */
  readonly closed: Promise<void>;

  private constructor(socket: Socket, options: NextHopOptions) {
    this.socket = socket;
    this.options = options;
    // The TCP socket closes under STARTTLS too (the TLS socket wraps it).
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.attach(socket);
  }

  /** Connects, reads the greeting and says EHLO (LHLO), with STARTTLS as configured. */
  static async open(options: NextHopOptions): Promise<NextHop> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: options.host, port: options.port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new RelayError('connect', `no connection to ${options.host}:${options.port} within ${options.timeoutMs} ms`));
      }, options.timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        // Commands and the final "." are small writes that wait for a reply:
        // Nagle plus delayed ACKs would add tens of milliseconds to each.
        s.setNoDelay(true);
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(new RelayError('connect', `cannot connect to ${options.host}:${options.port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, { cause: err }));
      });
    });
    const hop = new NextHop(socket, options);
    try {
      hop.greeting = await hop.read();
      if (hop.greeting.code !== 220) throw new RelayError('protocol', `next hop greeted with ${hop.greeting.code} ${replyText(hop.greeting)}`);
      await hop.hello();
      const tls = options.tls ?? 'off';
      if (tls !== 'off' && hop.extensions.has('STARTTLS')) {
        await hop.startTls();
        await hop.hello();
      } else if (tls === 'required') {
        throw new RelayError('tls', `the next hop at ${options.host}:${options.port} does not offer STARTTLS, and relay_tls = "required"`);
      }
      return hop;
    } catch (err) {
      hop.close();
      throw err;
    }
  }

  private attach(socket: Socket | TLSSocket): void {
    // SMTPUTF8: addresses and replies may be UTF-8; commands are written the same way.
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.onData(d));
    socket.on('error', (err) => this.fail(new RelayError('closed', `next hop connection failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`, { cause: err })));
    socket.on('close', () => this.fail(new RelayError('closed', 'the next hop closed the connection')));
  }

  private fail(err: RelayError): void {
    this.failure ??= err;
    if (this.waiter) {
      clearTimeout(this.waiter.timer);
      const w = this.waiter;
      this.waiter = undefined;
      w.reject(this.failure);
    }
  }

  private onData(data: string): void {
    this.buffer += data;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) !== -1) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.lines.push(line);
      // The last line of a reply has a space (or nothing) after the code.
      if (/^\d{3}(?: |$)/.test(line)) {
        const lines = this.lines;
        this.lines = [];
        this.deliver(parseReply(lines));
      } else if (!/^\d{3}-/.test(line)) {
        this.fail(new RelayError('protocol', `next hop sent a malformed reply line: ${JSON.stringify(line.slice(0, 80))}`));
        this.socket.destroy();
      }
    }
  }

  private pending: Reply[] = [];

  private deliver(reply: Reply): void {
    if (this.waiter) {
      clearTimeout(this.waiter.timer);
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(reply);
    } else {
      this.pending.push(reply);
    }
  }

  /** The next reply, within the command timeout. */
  private read(): Promise<Reply> {
    const ready = this.pending.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        const err = new RelayError('timeout', `the next hop did not answer within ${this.options.timeoutMs} ms`);
        this.failure ??= err;
        this.socket.destroy();
        reject(err);
      }, this.options.timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  /** Sends one command line and returns its reply. */
  async command(line: string): Promise<Reply> {
    if (this.failure) throw this.failure;
    if (/[\r\n]/.test(line)) throw new Error('a command line may not contain CR or LF');
    this.socket.write(`${line}\r\n`, 'utf8');
    return this.read();
  }

  /** Several commands in one write (RFC 2920 PIPELINING); one reply each, in order. */
  async pipeline(lines: readonly string[]): Promise<Reply[]> {
    if (this.failure) throw this.failure;
    if (lines.some((l) => /[\r\n]/.test(l))) throw new Error('a command line may not contain CR or LF');
    this.socket.write(lines.map((l) => `${l}\r\n`).join(''), 'utf8');
    const replies: Reply[] = [];
    for (let k = 0; k < lines.length; k++) replies.push(await this.read());
    return replies;
  }

  /** Sends the message body after a 354 obtained elsewhere (e.g. through `pipeline`). */
  async body(message: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, recipients: number): Promise<Reply[]> {
    const stuffer = new DotStuffer();
    await this.writeMessage('', message, (chunk) => stuffer.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)), () => stuffer.end());
    return this.messageReplies(recipients);
  }

  /**
   * RFC 3030 CHUNKING: the whole message as one `BDAT <size> LAST` chunk,
   * written with the command, no 354 to wait for and no dot-stuffing; then
   * its reply (one per recipient for LMTP). `size` must be the exact octet
   * count: the next hop reads exactly that many, so a message that turns out
   * longer or shorter is never sent in part. The connection is closed
   * instead, and the next hop, without its LAST chunk, delivers nothing.
   */
  async bdat(message: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, size: number, recipients: number): Promise<Reply[]> {
    if (this.failure) throw this.failure;
    let sent = 0;
    const mismatch = (what: string): RelayError => {
      this.close();
      return new RelayError('protocol', `message ${what} than the ${size} octets announced in BDAT; not sent`);
    };
    await this.writeMessage(
      `BDAT ${size} LAST\r\n`,
      message,
      (chunk) => {
        if (sent + chunk.byteLength > size) throw mismatch('longer');
        sent += chunk.byteLength;
        return chunk;
      },
      () => {
        if (sent !== size) throw mismatch('shorter');
        return undefined;
      },
    );
    return this.messageReplies(recipients);
  }

  /**
   * Writes a command line (if any) and a message corked, so that a small one
   * and its end leave in one write: each chunk as `each` turns it, then what
   * `end` gives. Waits on backpressure; stops at a failure of the connection.
   */
  private async writeMessage(command: string, message: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, each: (chunk: Uint8Array) => Uint8Array, end: () => Uint8Array | undefined): Promise<void> {
    this.socket.cork();
    try {
      if (command) this.socket.write(command, 'latin1');
      for await (const chunk of message as AsyncIterable<Uint8Array>) {
        if (this.failure) throw this.failure;
        if (!this.socket.write(each(chunk))) {
          this.socket.uncork();
          await waitDrain(this.socket, () => this.failure);
          this.socket.cork();
        }
      }
      if (this.failure) throw this.failure;
      const last = end();
      if (last) this.socket.write(last);
    } finally {
      this.socket.uncork();
    }
  }

  /** The reply to a message: one, or one per recipient for LMTP. */
  private async messageReplies(recipients: number): Promise<Reply[]> {
    const replies: Reply[] = [await this.read()];
    if (this.options.lmtp) for (let k = 1; k < recipients; k++) replies.push(await this.read());
    return replies;
  }

  private async hello(): Promise<void> {
    const verb = this.options.lmtp ? 'LHLO' : 'EHLO';
    const reply = await this.command(`${verb} ${this.options.name}`);
    if (reply.code !== 250) throw new RelayError('protocol', `next hop refused ${verb}: ${reply.code} ${replyText(reply)}`);
    this.extensions.clear();
    for (const l of reply.lines.slice(1)) {
      const [keyword = '', ...rest] = l.trim().split(/\s+/);
      this.extensions.set(keyword.toUpperCase(), rest.join(' '));
    }
  }

  private async startTls(): Promise<void> {
    const reply = await this.command('STARTTLS');
    if (reply.code !== 220) {
      if (this.options.tls === 'required') throw new RelayError('tls', `next hop refused STARTTLS: ${reply.code} ${replyText(reply)}`);
      return;
    }
    const plain = this.socket as Socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    const secure = await new Promise<TLSSocket>((resolve, reject) => {
      // Opportunistic TLS to a next hop on our own host or network: encryption
      // without authentication, as Postfix's "may" level does.
      // SNI carries host names only (RFC 6066 §3); Node 24 warns when given an address.
      const s = tlsConnect({ socket: plain, ...(isIP(this.options.host) === 0 ? { servername: this.options.host } : {}), rejectUnauthorized: false });
      s.once('secureConnect', () => resolve(s));
      s.once('error', (err) => reject(new RelayError('tls', `TLS with the next hop failed: ${err.message}`, { cause: err })));
    });
    this.socket = secure;
    this.attach(secure);
  }

  /**
   * The XFORWARD commands that pass the original client's attributes on: none
   * when the next hop does not take XFORWARD or takes none of these names.
   */
  xforwardCommands(attributes: ReadonlyMap<string, string>): string[] {
    const offered = this.extensions.get('XFORWARD');
    if (offered === undefined || attributes.size === 0) return [];
    const allowed = new Set(offered.toUpperCase().split(/\s+/));
    const parts = [...attributes].filter(([k]) => allowed.has(k)).map(([k, v]) => `${k}=${xtext(v)}`);
    const lines: string[] = [];
    // Postfix takes at most 512 octets a command: send in as many as needed.
    let line = 'XFORWARD';
    for (const p of parts) {
      if (line.length + p.length + 1 > 500 && line !== 'XFORWARD') {
        lines.push(line);
        line = 'XFORWARD';
      }
      line += ` ${p}`;
    }
    if (line !== 'XFORWARD') lines.push(line);
    return lines;
  }

  /**
   * Opens a mail transaction: RSET first when `reset` (a previous one is
   * still open), the XFORWARD attributes, MAIL and the first RCPT, in one
   * write where the next hop offers PIPELINING. XFORWARD is advisory (a
   * refusal costs only the log attributes). A refused RSET means we are out
   * of step with the next hop: the connection is closed and RelayError
   * thrown. `rcpt` is undefined when MAIL was refused and RCPT not sent.
   */
  async openTransaction(request: TransactionRequest): Promise<TransactionReplies> {
    const lines = [...(request.reset ? ['RSET'] : []), ...this.xforwardCommands(request.xforward), request.mail, request.rcpt];
    const mailAt = lines.length - 2;
    const replies = await this.commands(lines, (k, r) => ((k === 0 && request.reset) || k >= mailAt) && !isPositive(r));
    const reset = request.reset ? replies[0] : undefined;
    if (reset && !isPositive(reset)) {
      this.close();
      throw new RelayError('protocol', `next hop refused RSET: ${reset.code} ${replyText(reset)}`);
    }
    const mail = replies[mailAt];
    if (!mail) throw new RelayError('protocol', 'next hop gave no reply to MAIL');
    return { mail, rcpt: replies[mailAt + 1] };
  }

  /**
   * Several commands, one reply each: in one write when the next hop offers
   * PIPELINING (RFC 2920), else one at a time, stopping after the first reply
   * that `stopAfter` says ends the group (the replies are then fewer than the lines).
   */
  async commands(lines: readonly string[], stopAfter: (index: number, reply: Reply) => boolean): Promise<Reply[]> {
    if (this.extensions.has('PIPELINING')) return this.pipeline(lines);
    const replies: Reply[] = [];
    for (const [k, line] of lines.entries()) {
      const reply = await this.command(line);
      replies.push(reply);
      if (stopAfter(k, reply)) break;
    }
    return replies;
  }

  /**
   * DATA: sends the message (CRLF line ends) dot-stuffed, ends it, and returns
   * the reply, or one reply per accepted recipient for LMTP.
   */
  async data(message: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, recipients: number): Promise<Reply[]> {
    const go = await this.command('DATA');
    if (go.code !== 354) return [go];
    return this.body(message, recipients);
  }

  async quit(): Promise<void> {
    if (this.failure) {
      this.close();
      return;
    }
    try {
      await this.command('QUIT');
    } catch {
      // the connection is going away either way
    } finally {
      this.close();
    }
  }

  close(): void {
    this.failure ??= new RelayError('closed', 'connection closed by us');
    this.socket.destroy();
  }

  get broken(): boolean {
    return this.failure !== undefined;
  }
}

function waitDrain(socket: Socket, failed: () => Error | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      const f = failed();
      if (f) reject(f);
      else resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

export function parseReply(lines: readonly string[]): Reply {
  const code = Number(lines[lines.length - 1]!.slice(0, 3));
  let enhanced: string | undefined;
  const text = lines.map((l) => {
    const rest = l.slice(4);
    const m = ENHANCED.exec(rest);
    if (m) {
      enhanced ??= m[1];
      return rest.slice(m[0].length);
    }
    return rest;
  });
  return { code, enhanced, lines: text };
}

/** RFC 3461 xtext, as XFORWARD values need. */
function xtext(value: string): string {
  return value.replace(/[^\x21-\x2a\x2c-\x3c\x3e-\x7e]/g, (c) => `+${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** RFC 5321 §4.5.2: a line starting with "." gets another; the end is CRLF "." CRLF. */
export class DotStuffer {
  private atLineStart = true;
  private lastTwo = '\r\n';

  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const parts: Buffer[] = [];
    let from = 0;
    if (this.atLineStart && chunk[0] === 0x2e) {
      parts.push(DOT);
    }
    let at = chunk.indexOf('\n.', 0, 'latin1');
    while (at !== -1) {
      parts.push(chunk.subarray(from, at + 1), DOT);
      from = at + 1;
      at = chunk.indexOf('\n.', at + 1, 'latin1');
    }
    this.atLineStart = chunk[chunk.length - 1] === 0x0a;
    this.lastTwo = (this.lastTwo + chunk.subarray(Math.max(0, chunk.length - 2)).toString('latin1')).slice(-2);
    if (parts.length === 0) return chunk;
    parts.push(chunk.subarray(from));
    return Buffer.concat(parts);
  }

  end(): Buffer {
    return Buffer.from(this.lastTwo === '\r\n' ? '.\r\n' : '\r\n.\r\n', 'latin1');
  }
}

const DOT = Buffer.from('.');
