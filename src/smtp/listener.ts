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
 */
import type { Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

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
  readonly address: string;
  /** What the client owes us now, and since when its deadline runs; nothing while it waits for us. */
  owes: Owed | undefined;
  /**
   * One timer per kind of deadline, made once and re-armed with refresh():
   * a new timer per reply would be several allocations per message. A timer
   * that fires for a deadline no longer owed does nothing.
   */
  command: NodeJS.Timeout | undefined;
  data: NodeJS.Timeout | undefined;
  /** The client waits for us (a handler of ours is deciding): no deadline runs. */
  waiting: boolean;
}

export class GuardedServer extends SMTPServer {
  private readonly limits: () => GuardLimits;
  private readonly perAddress = new Map<string, number>();
  private readonly guards = new Map<string, Guarded>();
  /** Told of a connection closed for its address's limit or a passed deadline. */
  onGuard: (event: { readonly kind: 'per-client-limit' | 'deadline'; readonly address: string; readonly stage?: string }) => void = () => {};

  constructor(options: SMTPServerOptions, limits: () => GuardLimits) {
    super(options);
    this.limits = limits;
  }

  override connect(socket: Socket, socketOptions?: Parameters<SMTPServer['connect']>[1]): void {
    super.connect(socket, socketOptions);
    let conn: Connection | undefined;
    for (const c of this.connections) conn = c;
    if (conn) this.guard(conn, socket);
  }

  /** The client now waits for a decision of ours (true), or we answered (false). */
  waiting(sessionId: string, waiting: boolean): void {
    const g = this.guards.get(sessionId);
    if (!g) return;
    g.waiting = waiting;
    if (waiting) this.disarm(g);
  }

  private guard(conn: Connection, socket: Socket): void {
    const address = conn.remoteAddress;
    const g: Guarded = { address, owes: undefined, command: undefined, data: undefined, waiting: false };
    const count = (this.perAddress.get(address) ?? 0) + 1;
    this.perAddress.set(address, count);
    this.guards.set(conn.id, g);
    // The TCP socket closes under STARTTLS too (the TLS socket wraps it).
    socket.once('close', () => {
      clearTimeout(g.command);
      clearTimeout(g.data);
      this.guards.delete(conn.id);
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left <= 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
    });

    const send = conn.send.bind(conn);
    conn.send = (code, data, context) => {
      const text = Array.isArray(data) ? data[0] : data;
      send(code, data, typeof text === 'string' && STARTS_WITH_CODE.test(text) ? false : context);
      if (code === 421 || g.waiting) return;
      // A reply was sent: the client owes the next command, or after 354 the message.
      this.arm(conn, g, code === 354 ? 'DATA' : 'command');
    };

    const limits = this.limits();
    // Over max_connections as a whole, smtp-server refuses it itself.
    const full = this.options.maxClients !== undefined && this.connections.size > this.options.maxClients;
    if (count > limits.perClient && !full) {
      this.onGuard({ kind: 'per-client-limit', address });
      // Before the greeting: the reply the client reads first is this one.
      send(421, `4.7.0 ${conn.name} Too many connections from ${address} (the limit is ${limits.perClient}); try again later`, false);
      return;
    }
    this.arm(conn, g, 'greeting');
  }

  /** The client owes `stage` from now on. A connection keeps the deadlines it was opened with; a reload applies to new ones. */
  private arm(conn: Connection, g: Guarded, stage: Owed): void {
    g.owes = stage;
    const data = stage === 'DATA';
    const timer = data ? g.data : g.command;
    if (timer) {
      timer.refresh();
      return;
    }
    const limits = this.limits();
    const ms = data ? limits.dataTimeoutMs : limits.commandTimeoutMs;
    const made = setTimeout(() => {
      // A deadline of another stage, or none owed: nothing to do.
      if (g.waiting || g.owes === undefined || (g.owes === 'DATA') !== data) return;
      const owed = g.owes;
      this.onGuard({ kind: 'deadline', address: g.address, stage: owed });
      conn.send(421, `4.4.2 ${conn.name} ${data ? 'The message' : 'A command'} did not arrive within ${Math.round(ms / 1000)} s; closing connection`, false);
    }, ms);
    made.unref();
    if (data) g.data = made;
    else g.command = made;
  }

  private disarm(g: Guarded): void {
    g.owes = undefined;
  }
}
