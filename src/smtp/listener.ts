/**
 * smtp-server with what a proxy in front of an MTA needs on top:
 *
 * - Exact enhanced status codes. smtp-server adds an RFC 3463 code of its own
 *   to each reply, picked by reply class (552 becomes "5.2.2 mailbox full"),
 *   unless codes are hidden altogether, which stops advertising the extension.
 *   A reply whose text already starts with a code is sent as it is, so a next
 *   hop's `550 5.1.1` reaches the client unchanged.
 * - A connection limit per client address (Postfix's
 *   smtpd_client_connection_count_limit), so that one address cannot hold
 *   every slot of `max_connections`.
 * - Deadlines rather than only an idle timeout (Postfix's
 *   smtpd_per_request_deadline): a client owes each command within
 *   `command_timeout` and the whole message within `data_timeout`, however
 *   often it sends a byte. The clock stops while the client waits for us.
 * - Pipelined replies sent as a unit (RFC 2920 §3.1), see reply-batching.ts.
 * - The DATA phase scanned with Buffer.indexOf, see data-mode.ts.
 * - The PROXY protocol, versions 1 and 2, from the load balancers listed in
 *   `proxy_protocol_from` (smtp-server reads version 1 only): the header is
 *   read before the greeting, and its client is the session's address.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { useDataScanner } from './data-mode.js';
import { parseProxyHeader } from './proxy-protocol.js';
import { batchReplies } from './reply-batching.js';

type Connection = SMTPServer['connections'] extends Set<infer C> ? C : never;

const STARTS_WITH_CODE = /^[245]\.\d{1,3}\.\d{1,3} /;

export interface GuardLimits {
  /** Connections one client address may hold at once. */
  readonly perClient: number;
  readonly commandTimeoutMs: number;
  readonly dataTimeoutMs: number;
}

type Owed = 'greeting' | 'command' | 'DATA';

interface Guarded {
  readonly conn: Connection;
  readonly address: string;
  /** What the client owes us now; nothing while it waits for us. */
  owes: Owed | undefined;
  /** When that deadline started (ms since the epoch). */
  since: number;
}

/**
 * XFORWARD HELO=[UNAVAILABLE] (Postfix sends it for a client that gave no
 * HELO) makes smtp-server forget this session's own EHLO, and then refuse
 * MAIL with "send HELO/EHLO first": a transaction lost for a name we only
 * needed for SPF. The session keeps its EHLO name; the forwarded one stays
 * unavailable in the XFORWARD attributes, where the proxy reads it.
 */
export function keepHeloAcrossXforward(conn: Connection): void {
  const c = conn as unknown as { hostNameAppearsAs: string | false; handler_XFORWARD?: (command: Buffer, callback: () => void) => void };
  const handler = c.handler_XFORWARD;
  if (typeof handler !== 'function') return;
  c.handler_XFORWARD = (command, callback) => {
    const before = c.hostNameAppearsAs;
    handler.call(conn, command, () => {
      if (!c.hostNameAppearsAs && before) c.hostNameAppearsAs = before;
      callback();
    });
  };
}

/** The DATA phase's scan of data-mode.ts on the connection's parsers: the one now, and the one STARTTLS makes. */
function scanDataWithIndexOf(conn: Connection): void {
  const c = conn as unknown as { _parser: object | false; _createParser(): object };
  if (c._parser) useDataScanner(c._parser);
  const create = c._createParser;
  if (typeof create !== 'function') return;
  c._createParser = function (this: unknown) {
    const parser = create.call(this);
    useDataScanner(parser);
    return parser;
  };
}

export class GuardedServer extends SMTPServer {
  private readonly limits: () => GuardLimits;
  private readonly perAddress = new Map<string, number>();
  private readonly guards = new Map<string, Guarded>();
  /** The next sweep for passed deadlines, while there are connections. */
  private sweeping: NodeJS.Timeout | undefined;
  /** Told of a connection closed for its address's limit, a passed deadline, or a PROXY header that was missing or malformed. */
  onGuard: (event: { readonly kind: 'per-client-limit' | 'deadline' | 'proxy-header'; readonly address: string; readonly stage?: string; readonly reason?: string }) => void = () => {};
  /** Whether a peer is a load balancer that must send a PROXY header (proxy_protocol_from). */
  expectsProxyHeader: (address: string) => boolean = () => false;
  /** How long a balancer has for its header. */
  proxyHeaderTimeoutMs = 5000;
  /** By session id: the client a balancer's PROXY header named, for XFORWARD to the next hop. */
  readonly proxied = new Map<string, { readonly address: string; readonly port: number }>();

  constructor(options: SMTPServerOptions, limits: () => GuardLimits) {
    super(options);
    this.limits = limits;
  }

  /**
   * smtp-server asks this before every session (its own version reads the
   * v1 line of `useProxy` peers). A listed balancer's header is required: a
   * missing or malformed one closes the connection before any reply, so it
   * never gets a 250. Other peers start at once; a header they send is just
   * bytes before the greeting ("You talk too soon"), never an address.
   */
  override _handleProxy(socket: Socket, callback: (err: Error | null, options?: { id: string; remoteAddress?: string; remotePort?: number }) => void): void {
    const id = BigInt(`0x${randomBytes(10).toString('hex')}`).toString(32).padStart(16, '0');
    const peer = socket.remoteAddress ?? '';
    if (!this.expectsProxyHeader(peer)) {
      setImmediate(() => callback(null, { id }));
      return;
    }
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (err: Error | null, options?: { id: string; remoteAddress?: string; remotePort?: number }): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.removeListener('readable', read);
      socket.removeListener('close', closed);
      socket.removeListener('end', closed);
      socket.removeListener('error', closed);
      if (err) {
        socket.on('error', () => {});
        socket.destroy();
        this.onGuard({ kind: 'proxy-header', address: peer, reason: err.message });
      }
      callback(err, options);
    };
    const read = (): void => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        buf = Buffer.concat([buf, chunk]);
        const h = parseProxyHeader(buf);
        if (h.kind === 'incomplete') continue;
        if (h.kind === 'invalid') return finish(new Error(`malformed PROXY header: ${h.reason}`));
        const rest = buf.subarray(h.consumed);
        if (rest.length > 0) socket.unshift(rest);
        if (h.source) this.proxied.set(id, h.source);
        return finish(null, { id, remoteAddress: h.source?.address ?? peer, remotePort: h.source?.port ?? socket.remotePort ?? 0 });
      }
    };
    const closed = (): void => finish(new Error('the connection ended before its PROXY header'));
    const timer = setTimeout(() => finish(new Error(`no PROXY header within ${this.proxyHeaderTimeoutMs} ms`)), this.proxyHeaderTimeoutMs);
    timer.unref();
    socket.on('readable', read);
    socket.on('close', closed);
    socket.on('end', closed);
    socket.on('error', closed);
  }

  override connect(socket: Socket, socketOptions?: Parameters<SMTPServer['connect']>[1]): void {
    super.connect(socket, socketOptions);
    let conn: Connection | undefined;
    for (const c of this.connections) conn = c;
    if (conn) this.guard(conn, socket);
  }

  /**
   * The client now waits for a decision of ours: no deadline runs until our
   * reply starts the next one.
   */
  waiting(sessionId: string): void {
    const g = this.guards.get(sessionId);
    if (g) g.owes = undefined;
  }

  private guard(conn: Connection, socket: Socket): void {
    const address = conn.remoteAddress;
    const g: Guarded = { conn, address, owes: undefined, since: 0 };
    const count = (this.perAddress.get(address) ?? 0) + 1;
    this.perAddress.set(address, count);
    this.guards.set(conn.id, g);
    // The TCP socket closes under STARTTLS too (the TLS socket wraps it).
    socket.once('close', () => {
      this.guards.delete(conn.id);
      this.proxied.delete(conn.id);
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left <= 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
    });

    const send = conn.send.bind(conn);
    const batch = batchReplies(conn);
    conn.send = (code, data, context) => {
      const text = Array.isArray(data) ? data[0] : data;
      // A reply in a pipelined group waits for the group's last (RFC 2920 §3.1); any other sends what waits first.
      batch.hold(code);
      send(code, data, typeof text === 'string' && STARTS_WITH_CODE.test(text) ? false : context);
      if (code === 421) return;
      // A reply was sent (which ends any wait of the client's for us): it owes the next command, or after 354 the message.
      g.owes = code === 354 ? 'DATA' : 'command';
      g.since = Date.now();
    };

    keepHeloAcrossXforward(conn);
    scanDataWithIndexOf(conn);

    const limits = this.limits();
    // Over max_connections as a whole, smtp-server refuses it itself.
    const full = this.options.maxClients !== undefined && this.connections.size > this.options.maxClients;
    if (count > limits.perClient && !full) {
      this.onGuard({ kind: 'per-client-limit', address });
      // Before the greeting: the reply the client reads first is this one.
      send(421, `4.7.0 ${conn.name} Too many connections from ${address} (the limit is ${limits.perClient}); try again later`, false);
      return;
    }
    g.owes = 'greeting';
    g.since = Date.now();
    this.sweepSoon();
  }

  /**
   * Deadlines are timestamps, checked by one sweep for all connections: a
   * timer per reply would cost more than the rest of the deadline logic.
   * The sweep runs every tenth of the shortest deadline (50 ms to 1 s), and
   * only while there are connections.
   */
  private sweepSoon(): void {
    if (this.sweeping || this.guards.size === 0) return;
    const { commandTimeoutMs, dataTimeoutMs } = this.limits();
    const every = Math.min(1000, Math.max(50, Math.min(commandTimeoutMs, dataTimeoutMs) / 10));
    this.sweeping = setTimeout(() => {
      this.sweeping = undefined;
      this.sweep();
      this.sweepSoon();
    }, every);
    this.sweeping.unref();
  }

  private sweep(): void {
    const { commandTimeoutMs, dataTimeoutMs } = this.limits();
    const now = Date.now();
    for (const g of this.guards.values()) {
      if (g.owes === undefined) continue;
      const ms = g.owes === 'DATA' ? dataTimeoutMs : commandTimeoutMs;
      if (now - g.since < ms) continue;
      const data = g.owes === 'DATA';
      g.owes = undefined;
      this.onGuard({ kind: 'deadline', address: g.address, stage: data ? 'DATA' : 'command' });
      g.conn.send(421, `4.4.2 ${g.conn.name} ${data ? 'The message' : 'A command'} did not arrive within ${Math.round(ms / 1000)} s; closing connection`, false);
    }
  }
}
