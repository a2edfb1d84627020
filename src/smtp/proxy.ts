/**
 * The two proxies on smtp-server. Each client session gets its own next-hop
 * connection, and the replies to RCPT and DATA are the next hop's own (never
 * 250 for a recipient it refused). MAIL is answered once the next hop is
 * connected and goes on with the first RCPT, in one write where the next hop
 * offers PIPELINING: a round trip fewer per message, and a next hop that
 * refuses the sender refuses each recipient with its own reply. A message is
 * received, processed (signed by `out`, verified by `in`: see src/pipeline/)
 * and only then relayed; until the next hop accepts it, the client has
 * nothing but a 4xx or the next hop's refusal.
 */
import { BlockList, isIPv4 } from 'node:net';
import { readFileSync } from 'node:fs';
import { setImmediate as afterPoll } from 'node:timers/promises';
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { Logger } from 'pino';
import type { PreparedSealer } from '../arc/seal.js';
import { Authenticator, isLoopback, type SessionUser } from './auth.js';
import type { ListenerConfig, ProxyConfig } from '../config/types.js';
import type { KeyLookup } from '../dns/resolver.js';
import type { WireResolver } from '../dns/wire.js';
import { wireFor } from '../dns/wire-cache.js';
import { messageLogger } from '../ops/log.js';
import { NO_METRICS, type ProxyMetrics } from '../ops/metrics.js';
import type { Envelope, MessageProcessor, MessageRun } from '../pipeline/message.js';
import { SigningProcessor } from '../pipeline/sign.js';
import { bodyToSend, scanning, type ScanningRun } from '../pipeline/transport.js';
import { VerifyingProcessor, type VerifySettings } from '../pipeline/verify.js';
import { isPositive, NextHop, RelayError, replyText, type Reply } from '../relay/client.js';
import { GuardedServer, type GuardLimits } from './listener.js';
import { receive, type ReceiveOptions } from './receive.js';
import { acceptedText, fromReply, replies, ReplyError, toReply } from './replies.js';
import type { Writable } from '../util/objects.js';

export type ProxyKind = 'out' | 'in';

export interface ProxyDeps {
  /** The config in force; read at each transaction, so a reload applies to the next one. */
  readonly config: () => ProxyConfig;
  readonly lookup: KeyLookup;
  /** SPF and DMARC lookups (`in`); default: a cached wire resolver from [dns] as it was at start. */
  readonly dns?: WireResolver;
  readonly log: Logger;
  readonly now?: () => number;
  readonly metrics?: ProxyMetrics;
}

interface SessionState {
  hop: NextHop | undefined;
  /** The next hop accepted a MAIL and no DATA finished yet: RSET before the next MAIL. */
  open: boolean;
  /** The client's MAIL, not yet accepted by the next hop: it goes with the next RCPT. */
  sender: SMTPServerAddress | undefined;
  accepted: string[];
  /** A DATA transaction is being received or relayed. */
  busy: boolean;
  /** What the processor started once the envelope was known, for this transaction's message. */
  early: unknown;
}

const CRLF = Buffer.from('\r\n');

/** The client left while a handler of ours was still at work: nobody to answer, and no fault of the next hop's. */
class ClientGone extends Error {
  override name = 'ClientGone';
}

function listenerOf(config: ProxyConfig, kind: ProxyKind): ListenerConfig {
  const l = kind === 'out' ? config.out : config.in;
  if (!l) throw new Error(`no [${kind}] listener configured`);
  return l;
}

function allowList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr, prefix] = c.split('/') as [string, string];
    list.addSubnet(addr, Number(prefix), isIPv4(addr) ? 'ipv4' : 'ipv6');
  }
  return list;
}

function clientAllowed(list: BlockList, address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const addr = mapped ? mapped[1]! : address;
  return list.check(addr, isIPv4(addr) ? 'ipv4' : 'ipv6');
}

/** MAIL/RCPT parameters, passed on where the next hop supports them. */
function params(args: SMTPServerAddress['args'], hop: NextHop, allowed: Record<string, string>): string {
  if (!args || typeof args !== 'object') return '';
  const out: string[] = [];
  for (const [key, value] of Object.entries(args as Record<string, string | boolean>)) {
    const k = key.toUpperCase();
    const needs = allowed[k];
    if (needs === undefined || !hop.extensions.has(needs)) continue;
    // We add a header: give SIZE room for it, so a next hop at its limit does not refuse what we grew.
    const v = k === 'SIZE' && typeof value === 'string' ? String(Number(value) + 8192) : value;
    out.push(v === true ? k : `${k}=${v}`);
  }
  return out.length ? ` ${out.join(' ')}` : '';
}

const MAIL_PARAMS = { SIZE: 'SIZE', BODY: '8BITMIME', SMTPUTF8: 'SMTPUTF8', RET: 'DSN', ENVID: 'DSN' };
const RCPT_PARAMS = { NOTIFY: 'DSN', ORCPT: 'DSN' };

/**
 * The client's XFORWARD attributes as the next hop should get them. smtp-server
 * keeps them parsed: PORT as a number, "[UNAVAILABLE]" as false, and the
 * socket's own address under "ADDR:DEFAULT" (ours, not to be passed on).
 */
export function forwardedAttributes(session: SMTPServerSession, balanced?: { readonly address: string; readonly port: number }): Map<string, string> {
  const parsed = (session as { xForward?: Map<string, string | number | boolean> }).xForward;
  const out = new Map<string, string>();
  const addr = (a: string): string => (a.includes(':') ? `IPV6:${a}` : a);
  for (const [key, value] of parsed ?? []) {
    if (key.includes(':')) continue;
    if (value === false || value === '') out.set(key, '[UNAVAILABLE]');
    else if (key === 'ADDR' && typeof value === 'string') out.set(key, addr(value));
    else out.set(key, String(value));
  }
  // Behind a balancer the next hop would see only us: it gets the client the PROXY header named.
  if (balanced && !out.has('ADDR')) {
    out.set('ADDR', addr(balanced.address));
    out.set('PORT', String(balanced.port));
  }
  return out;
}

/** What the processors know of the transaction: the original client as XFORWARD gave it, else the socket's peer. */
function envelopeOf(session: SMTPServerSession): Envelope {
  const xf = forwardedAttributes(session);
  const addr = xf.get('ADDR');
  const helo = xf.get('HELO');
  const envelope: Writable<Envelope> = {
    clientAddress: addr !== undefined && addr !== '[UNAVAILABLE]' ? addr.replace(/^IPV6:/i, '') : session.remoteAddress,
    // The original client's HELO: XFORWARD's when it sent one ([UNAVAILABLE]: none), else this session's own.
    helo: helo !== undefined ? (helo !== '[UNAVAILABLE]' ? helo : undefined) : session.hostNameAppearsAs || undefined,
    mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
    rcptTo: session.envelope.rcptTo.map((r) => r.address),
  };
  if (addr === '[UNAVAILABLE]') envelope.clientAddressUnavailable = true;
  if (session.user) envelope.user = session.user as unknown as SessionUser;
  return envelope;
}

export interface ProxyServer {
  readonly kind: ProxyKind;
  listen(): Promise<{ host: string; port: number }>;
  /** Stops accepting; resolves once open connections are done (or after the grace time). */
  close(): Promise<void>;
  readonly server: GuardedServer;
}

export function createProxy(kind: ProxyKind, deps: ProxyDeps): ProxyServer {
  const now = deps.now ?? (() => Math.floor(Date.now() / 1000));
  let active = 0;
  if (kind === 'out') {
    const sealer = (): PreparedSealer | undefined => (deps.config().out?.arcSeal ? deps.config().arc?.sealer : undefined);
    const processor = new SigningProcessor({
      signing: () => deps.config().signing,
      lookup: deps.lookup,
      now,
      sealer,
      ...(deps.metrics ? { metrics: deps.metrics } : {}),
      offload: () => active > 1,
      selectorChanged: (c) => deps.log.info({ domain: c.domain, block: c.block, from: c.from, to: c.to }, 'signing selector changed'),
      signCondition: () => deps.config().out?.signCondition ?? 'can_relay',
      selfCheckFailed: (f) => deps.log.error({ domain: f.domain, selector: f.selector, reason: f.reason }, 'signature failed its self-check: message deferred, not sent'),
    });
    return proxyWith(kind, deps, processor, (delta) => (active += delta));
  }
  const settings = (): VerifySettings => {
    const l = deps.config().in;
    if (!l) throw new Error('no [in] listener configured');
    return l;
  };
  const dns = deps.dns ?? wireFor(deps.config().dns, deps.metrics ? (event) => deps.metrics!.policyDnsCache(event) : undefined);
  const sealer = (): PreparedSealer | undefined => (deps.config().in?.arcSeal ? deps.config().arc?.sealer : undefined);
  const processor = new VerifyingProcessor({ settings, lookup: deps.lookup, dns, now, sealer, offload: () => active > 1, ...(deps.metrics ? { metrics: deps.metrics } : {}) });
  return proxyWith(kind, deps, processor, (delta) => (active += delta));
}

function proxyWith<R, E>(kind: ProxyKind, deps: ProxyDeps, processor: MessageProcessor<R, E>, countActive: (delta: 1 | -1) => void): ProxyServer {
  const initial = listenerOf(deps.config(), kind);
  const sessions = new Map<string, SessionState>();
  const metrics = deps.metrics ?? NO_METRICS;
  const messageLog = messageLogger(deps.log);
  let allow = { cidrs: initial.allowClients, list: allowList(initial.allowClients) };
  const allowed = (address: string): boolean => {
    const current = listenerOf(deps.config(), kind).allowClients;
    if (current !== allow.cidrs) allow = { cidrs: current, list: allowList(current) };
    return clientAllowed(allow.list, address);
  };

  /** The session's state, made at connect and gone at close: a handler still running then cannot bring it back. */
  const state = (session: SMTPServerSession): SessionState => {
    const s = sessions.get(session.id);
    if (!s) throw new ClientGone('the client has left');
    return s;
  };

  /** The reply for a failed command; faults that are not a reply of ours are logged with their cause. */
  const refusal = (stage: string, session: SMTPServerSession, err: unknown): ReplyError => {
    const where = { kind, cid: session.id, client: session.remoteAddress, stage, err };
    if (err instanceof ClientGone) {
      deps.log.debug(where, 'client left');
    } else if (err instanceof RelayError) {
      metrics.relay(kind, err.kind === 'connect' ? 'unreachable' : 'failed');
      deps.log.warn(where, 'next hop failed');
    } else if (!(err instanceof ReplyError)) {
      deps.log.error(where, 'internal error');
    }
    return toReply(err);
  };

  async function hopFor(session: SMTPServerSession): Promise<NextHop> {
    const s = state(session);
    if (s.hop && !s.hop.broken) return s.hop;
    const l = listenerOf(deps.config(), kind);
    const hop = await NextHop.open({ host: l.relay.host, port: l.relay.port, name: l.hostname, timeoutMs: l.relayTimeoutMs, tls: l.relayTls, lmtp: l.relayProtocol === 'lmtp' });
    // The client may have left while we connected: nobody would close this one.
    if (sessions.get(session.id) !== s) {
      hop.close();
      throw new ClientGone('the client left while the next hop was being connected');
    }
    s.hop = hop;
    s.open = false;
    return hop;
  }

  /** Runs a handler of ours while the client waits for it: no deadline of the client's runs meanwhile. */
  const decide = (session: SMTPServerSession, work: () => Promise<void>, callback: (err?: Error | null) => void, stage: string): void => {
    // The reply that follows starts the client's next deadline.
    server.waiting(session.id);
    work().then(
      () => callback(),
      (err: unknown) => callback(refusal(stage, session, err)),
    );
  };

  const limits = (): GuardLimits => {
    const l = listenerOf(deps.config(), kind);
    return { perClient: l.maxConnectionsPerClient, commandTimeoutMs: l.commandTimeoutMs, dataTimeoutMs: l.dataTimeoutMs };
  };

  const outConfig = kind === 'out' ? deps.config().out : undefined;
  // Only a listener started with users offers AUTH (adding auth_users_file takes a restart, changing users a reload).
  const auth = outConfig?.authUsersFile !== undefined ? new Authenticator(() => deps.config().out?.authUsers, deps.log) : undefined;
  const server: GuardedServer = new GuardedServer(
    {
      name: initial.hostname,
      banner: `dkim-proxy ${kind}`,
      lmtp: initial.protocol === 'lmtp',
      size: initial.maxMessageBytes,
      maxClients: initial.maxConnections,
      socketTimeout: initial.idleTimeoutMs,
      closeTimeout: 30_000,
      hideENHANCEDSTATUSCODES: false,
      hide8BITMIME: false,
      hideSMTPUTF8: false,
      hidePIPELINING: false,
      useXForward: true,
      authOptional: true,
      // XFORWARD (from Postfix) names the client; a PTR lookup per connection would only add a wait.
      disableReverseLookup: true,
      // AUTH where [out] has users: listed per session (onConnect, onSecure), so smtp-server's own TLS rule is off.
      ...(auth ? { authMethods: ['PLAIN', 'LOGIN'], allowInsecureAuth: true } : {}),
      disabledCommands: [...(auth ? [] : ['AUTH']), ...(initial.tls ? [] : ['STARTTLS'])],
      ...(initial.tls ? { key: readFileSync(initial.tls.key), cert: readFileSync(initial.tls.cert) } : {}),
      logger: false,

      onConnect(session, callback) {
        const l = listenerOf(deps.config(), kind);
        // A reload applies to the next EHLO: the SIZE we advertise is the limit we enforce.
        server.options.size = l.maxMessageBytes;
        // The socket's own address: XFORWARD later rewrites session.remoteAddress.
        if (!allowed(session.remoteAddress)) {
          deps.log.warn({ kind, client: session.remoteAddress }, 'client refused: not in allow_clients');
          metrics.clientRefused(kind);
          callback(replies.accessDenied(session.remoteAddress, kind === 'out' ? 'signing' : 'verifying'));
          return;
        }
        sessions.set(session.id, { hop: undefined, open: false, sender: undefined, accepted: [], busy: false, early: undefined });
        // A password crosses the network in the clear only from loopback: elsewhere AUTH appears after STARTTLS.
        if (auth && !isLoopback(session.remoteAddress)) session.disabledCommands = ['AUTH', ...(initial.tls ? [] : ['STARTTLS'])];
        callback();
      },

      onSecure(_socket, session, callback) {
        if (auth) session.disabledCommands = [];
        callback();
      },

      onAuth(credentials, session, callback) {
        if (!auth) return callback(new Error('AUTH is not offered here'));
        auth.check(credentials.username, credentials.password ?? '', session.remoteAddress).then(
          (r) => (r.ok ? callback(null, { user: r.user }) : callback(Object.assign(new Error(r.reply), { responseCode: r.code }))),
          (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
        );
      },

      onMailFrom(address, session, callback) {
        // Connecting now, so that a next hop that is down refuses the sender.
        decide(
          session,
          async () => {
            await hopFor(session);
            const s = state(session);
            s.sender = address;
            s.accepted = [];
            s.early = undefined;
          },
          callback,
          'MAIL',
        );
      },

      onRcptTo(address, session, callback) {
        decide(session, () => recipient(address, session), callback, 'RCPT');
      },

      onData(stream, session, callback) {
        const s = sessions.get(session.id);
        if (!s) {
          callback(toReply(new ClientGone('the client has left')));
          return;
        }
        s.busy = true;
        countActive(1);
        metrics.inFlight(kind, 1);
        // The whole message is in: the client now waits for our reply.
        stream.once('end', () => server.waiting(session.id));
        const started = process.hrtime.bigint();
        const size = { bytes: 0 };
        const account = (code: number): void => metrics.transaction(kind, code, size.bytes, Number(process.hrtime.bigint() - started) / 1e9);
        transaction(stream, session, size)
          .finally(() => {
            s.busy = false;
            countActive(-1);
            metrics.inFlight(kind, -1);
          })
          .then(
            (result) => {
              // LMTP: one reply per recipient; the transaction counts as relayed if any was.
              account(Array.isArray(result) ? (result.some((r) => typeof r === 'string') ? 250 : (result[0] as ReplyError).responseCode) : 250);
              callback(null, result);
            },
            (err: unknown) => {
              const reply = refusal('DATA', session, err);
              account(reply.responseCode);
              callback(reply);
            },
          );
      },

      onClose(session) {
        const s = sessions.get(session.id);
        sessions.delete(session.id);
        if (!s?.hop) return;
        if (s.busy) {
          // The client left before our reply, so it will send the message again:
          // abort the next hop's copy (a QUIT now would land inside its DATA)
          // rather than deliver it twice.
          deps.log.warn({ kind, cid: session.id }, 'client left during a transaction: next-hop transaction aborted');
          s.hop.close();
          return;
        }
        void s.hop.quit();
      },
    },
    limits,
  );
  server.on('error', (err) => deps.log.error({ kind, err }, 'listener error'));
  let balancers = { cidrs: initial.proxyProtocolFrom, list: allowList(initial.proxyProtocolFrom) };
  server.expectsProxyHeader = (address) => {
    const current = listenerOf(deps.config(), kind).proxyProtocolFrom;
    if (current.length === 0) return false;
    if (current !== balancers.cidrs) balancers = { cidrs: current, list: allowList(current) };
    return clientAllowed(balancers.list, address);
  };
  server.proxyHeaderTimeoutMs = Math.min(5000, initial.commandTimeoutMs);
  server.onGuard = (event) => {
    if (event.kind === 'per-client-limit') {
      metrics.clientRefused(kind);
      deps.log.warn({ kind, client: event.address }, 'client refused: too many connections from its address');
    } else if (event.kind === 'proxy-header') {
      metrics.clientRefused(kind);
      deps.log.warn({ kind, balancer: event.address, reason: event.reason }, 'load balancer connection closed: no valid PROXY header');
    } else {
      deps.log.warn({ kind, client: event.address, stage: event.stage }, 'client too slow: deadline passed, connection closed');
    }
  };

  /** One RCPT: the first of a transaction opens it at the next hop with the MAIL it carries. */
  async function recipient(address: SMTPServerAddress, session: SMTPServerSession): Promise<void> {
    const s = state(session);
    // A next hop lost after it took MAIL has lost this transaction with it.
    if (s.open && (!s.hop || s.hop.broken)) throw replies.hopLost('after MAIL');
    const hop = await hopFor(session);
    const rcpt = `RCPT TO:<${address.address}>${params(address.args, hop, RCPT_PARAMS)}`;
    const sender = s.sender;
    if (!sender) {
      const reply = await hop.command(rcpt);
      if (!isPositive(reply)) throw fromReply(reply);
      s.accepted.push(address.address);
      return;
    }
    const opened = await hop.openTransaction({ reset: s.open, xforward: forwardedAttributes(session, server.proxied.get(session.id)), mail: `MAIL FROM:<${sender.address}>${params(sender.args, hop, MAIL_PARAMS)}`, rcpt });
    s.open = false;
    if (!isPositive(opened.mail)) throw fromReply(opened.mail);
    s.open = true;
    s.sender = undefined;
    if (!opened.rcpt) throw new RelayError('protocol', 'next hop gave no reply to RCPT');
    if (!isPositive(opened.rcpt)) throw fromReply(opened.rcpt);
    s.accepted.push(address.address);
    // The envelope is known: SPF (in) can ask DNS while the client sends the rest.
    s.early = processor.early?.(envelopeOf(session));
  }

  /** Closes the next hop's half-open transaction after a message that is not relayed. */
  async function abandon(s: SessionState): Promise<void> {
    if (s.hop && !s.hop.broken && s.open) await s.hop.command('RSET').catch(() => undefined);
    s.open = false;
  }

  /** One message: receive, process, relay; the result is what smtp-server replies. */
  async function transaction(stream: SMTPServerDataStream, session: SMTPServerSession, size: { bytes: number }): Promise<string | (string | Error)[]> {
    const started = process.hrtime.bigint();
    const l = listenerOf(deps.config(), kind);
    const s = state(session);
    const envelope = envelopeOf(session);
    // Started at the first RCPT of this transaction; the next one starts its own.
    const early = s.early as E | undefined;
    s.early = undefined;
    const logBase = { kind, cid: session.id, client: session.remoteAddress, from: envelope.mailFrom, rcpt: envelope.rcptTo };
    // `out` with transport_encoding = "7bit": the body is scanned as it is signed, in case it needs converting.
    const sevenBit = kind === 'out' && deps.config().out?.transportEncoding === '7bit';

    const limits: Writable<ReceiveOptions<ScanningRun<R> | MessageRun<R>>> = {
      maxHeaderBytes: l.maxHeaderBytes,
      maxHeaderFields: l.maxHeaderFields,
      maxMessageBytes: l.maxMessageBytes,
      spoolThresholdBytes: l.spoolThresholdBytes,
      onHeaders: async (head): Promise<ScanningRun<R> | MessageRun<R>> => {
        // As before finish() below: started once this turn's reads are done,
        // with the other messages whose header block came in the same turn.
        // Their DNS lookups still leave in this turn.
        await afterPoll();
        const run = await processor.start(head, envelope, early);
        return sevenBit ? scanning(run, head) : run;
      },
    };
    if (l.spoolDir !== undefined) limits.spoolDir = l.spoolDir;
    const received = await receive(stream, limits).catch(async (err: unknown) => {
      await abandon(s);
      throw err;
    });

    size.bytes = received.bytes;
    if (received.kind !== 'ok') {
      await abandon(s);
      messageLog.info(Object.assign({}, logBase, { bytes: received.bytes, refused: received.kind }), 'message refused');
      switch (received.kind) {
        case 'too-large':
          throw replies.messageTooLarge(l.maxMessageBytes);
        case 'header-too-large':
          throw replies.headerTooLarge(l.maxHeaderBytes);
        case 'too-many-fields':
          throw replies.tooManyFields(received.fields, l.maxHeaderFields);
      }
    }

    const messageId = received.head.fields.find((f) => f.key === 'message-id');
    const idField = messageId ? { messageId: messageId.raw.slice(messageId.raw.indexOf(':') + 1).trim() } : {};
    const logFields: Record<string, unknown> = Object.assign({}, idField);
    let spool = received.spool;
    try {
      // transport_encoding = "7bit": the converted message, when the scan found it needed converting.
      const send = await bodyToSend(received.head, { run: received.handler, spool }, (head) => processor.start(head, envelope, early), { thresholdBytes: l.spoolThresholdBytes, dir: l.spoolDir }, (c) => metrics.reencoded(c.to, c.why));
      if (send.failed) messageLog.warn(Object.assign({}, logBase, idField, { because: send.failed.because, err: send.failed.error }), 'could not convert to 7-bit: signed and relayed as it came');
      spool = send.spool;
      const run = send.run;
      Object.assign(logFields, send.log);
      // The checks and signatures of every message whose end came in this
      // turn of the event loop run one after another, once the turn has read
      // all its sockets, rather than each between the reads of the next: the
      // crypto and parsing code then stays in the core's caches. Measured on
      // one core at full load, `in` took 11-29% less CPU per message (an RSA
      // verification 21.5 µs instead of 31).
      await afterPoll();
      const processed = await run.finish();
      Object.assign(logFields, processor.logFields(processed.report));
      if (processed.refusal) {
        await abandon(s);
        messageLog.info(Object.assign({}, logBase, logFields, { bytes: received.bytes, refused: processed.refusal.text }), 'message refused');
        throw processed.refusal;
      }
      const hop = s.hop;
      if (!hop || hop.broken) throw replies.hopLost('before DATA');
      const body = await spool.reader();
      const head = [...(processed.prepend.length > 0 ? [processed.prepend] : []), processed.headerBlock, CRLF];
      const parts = Array.isArray(body)
        ? [...head, ...body]
        : (async function* () {
            yield* head;
            yield* body as AsyncIterable<Buffer>;
          })();
      let relayed: Reply[];
      try {
        // CHUNKING (Postfix offers it): the message goes with its command, a round trip fewer than DATA.
        const octets = head.reduce((n, b) => n + b.length, spool.bytes);
        relayed = hop.extensions.has('CHUNKING') ? await hop.bdat(parts, octets, s.accepted.length) : await hop.data(parts, s.accepted.length);
      } catch (err) {
        hop.close();
        throw err;
      }
      s.open = false;
      for (const r of relayed) metrics.relay(kind, r.code);
      const latencyMs = Number(process.hrtime.bigint() - started) / 1e6;
      messageLog.info(Object.assign({}, logBase, logFields, { bytes: received.bytes, relay: relayed.map((r) => `${r.code} ${replyText(r)}`), latencyMs: Math.round(latencyMs * 10) / 10 }), 'message relayed');
      if (l.protocol === 'lmtp') {
        // An LMTP next hop answers for each recipient, in order; an SMTP one once, for all.
        return session.envelope.rcptTo.map((rcpt, k) => {
          const r = relayed[l.relayProtocol === 'lmtp' ? k : 0];
          if (!r) return toReply(new RelayError('protocol', `no reply from the next hop for <${rcpt.address}>`));
          return isPositive(r) ? acceptedText(r) : fromReply(r);
        });
      }
      const reply = relayed[0]!;
      if (!isPositive(reply)) throw fromReply(reply);
      return acceptedText(reply);
    } catch (err) {
      messageLog.warn(Object.assign({}, logBase, logFields, { bytes: received.bytes, err: err instanceof Error ? err.message : String(err) }), 'message not relayed');
      throw err;
    } finally {
      await spool.dispose();
      await received.spool.dispose();
    }
  }

  return {
    kind,
    server,
    listen: () =>
      new Promise((resolve, reject) => {
        const l = listenerOf(deps.config(), kind);
        server.once('error', reject);
        server.listen(l.listen.port, l.listen.host, () => {
          server.off('error', reject);
          const a = server.server.address();
          resolve(typeof a === 'object' && a ? { host: a.address, port: a.port } : { host: l.listen.host, port: l.listen.port });
        });
      }),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
