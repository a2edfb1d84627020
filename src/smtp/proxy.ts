/**
 * The two proxies on smtp-server. Each client session gets its own next-hop
 * connection, and the replies to RCPT and DATA are the next hop's own (never
 * 250 for a recipient it refused). MAIL is answered once the next hop is
 * connected and goes on with the first RCPT, in one write where the next hop
 * offers PIPELINING: a round trip fewer per message, and a next hop that
 * refuses the sender refuses each recipient with its own reply. The message
 * reaches the next hop only once it is complete and signed (`out`) or
 * verified (`in`); until the next hop accepts it, the client has nothing but
 * a 4xx or the next hop's refusal.
 */
import { BlockList, isIPv4 } from 'node:net';
import { readFileSync } from 'node:fs';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { Logger } from 'pino';
import {
  formatAuthenticationResults,
  MessageSigner,
  MessageVerifier,
  parseHeaderBlock,
  type DkimOutcome,
  type KeyAnswer,
} from '../dkim/index.js';
import type { InListenerConfig, ListenerConfig, ProxyConfig } from '../config/types.js';
import type { KeyLookup } from '../dns/resolver.js';
import { authorDomain } from '../policy/author.js';
import { messageLogger } from '../ops/log.js';
import { NO_METRICS, type ProxyMetrics } from '../ops/metrics.js';
import { planSignatures, toSignRequest } from '../policy/signing.js';
import { isPositive, NextHop, RelayError, replyText, type Reply } from '../relay/client.js';
import { receive, type BodyHandler } from './receive.js';
import { fromReply, ReplyError, toReply } from './replies.js';

export type ProxyKind = 'out' | 'in';

export interface ProxyDeps {
  /** The config in force; read at each transaction, so a reload applies to the next one. */
  readonly config: () => ProxyConfig;
  readonly lookup: KeyLookup;
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
}

const CRLF = Buffer.from('\r\n');

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

/** Removes Authentication-Results fields that claim our authserv-id: forged upstream (RFC 8601 §5). */
export function stripForgedResults(headerBlock: Buffer, authservId: string): { block: Buffer; removed: number } {
  const fields = parseHeaderBlock(headerBlock.toString('latin1'));
  const ours = authservId.toLowerCase();
  const keep = fields.filter((f) => {
    if (f.key !== 'authentication-results') return true;
    const value = f.raw.slice(f.raw.indexOf(':') + 1).replace(/\([^)]*\)/g, ' ');
    const id = /^\s*([^\s;]+)/.exec(value)?.[1]?.toLowerCase();
    return id !== ours;
  });
  if (keep.length === fields.length) return { block: headerBlock, removed: 0 };
  return { block: Buffer.from(keep.map((f) => f.raw).join(''), 'latin1'), removed: fields.length - keep.length };
}

/**
 * The client's XFORWARD attributes as the next hop should get them. smtp-server
 * keeps them parsed: PORT as a number, "[UNAVAILABLE]" as false, and the
 * socket's own address under "ADDR:DEFAULT" (ours, not to be passed on).
 */
export function forwardedAttributes(session: SMTPServerSession): Map<string, string> {
  const parsed = (session as { xForward?: Map<string, string | number | boolean> }).xForward;
  const out = new Map<string, string>();
  for (const [key, value] of parsed ?? []) {
    if (key.includes(':')) continue;
    if (value === false || value === '') out.set(key, '[UNAVAILABLE]');
    else if (key === 'ADDR' && typeof value === 'string' && value.includes(':')) out.set(key, `IPV6:${value}`);
    else out.set(key, String(value));
  }
  return out;
}

export interface ProxyServer {
  readonly kind: ProxyKind;
  listen(): Promise<{ host: string; port: number }>;
  /** Stops accepting; resolves once open connections are done (or after the grace time). */
  close(): Promise<void>;
  readonly server: SMTPServer;
}

export function createProxy(kind: ProxyKind, deps: ProxyDeps): ProxyServer {
  const initial = listenerOf(deps.config(), kind);
  const sessions = new Map<string, SessionState>();
  const now = deps.now ?? (() => Math.floor(Date.now() / 1000));
  const metrics = deps.metrics ?? NO_METRICS;
  const messageLog = messageLogger(deps.log);
  /** Transactions between DATA and their reply. */
  let active = 0;
  let allow = { cidrs: initial.allowClients, list: allowList(initial.allowClients) };
  const allowed = (address: string): boolean => {
    const current = listenerOf(deps.config(), kind).allowClients;
    if (current !== allow.cidrs) allow = { cidrs: current, list: allowList(current) };
    return clientAllowed(allow.list, address);
  };

  const state = (session: SMTPServerSession): SessionState => {
    let s = sessions.get(session.id);
    if (!s) {
      s = { hop: undefined, open: false, sender: undefined, accepted: [], busy: false };
      sessions.set(session.id, s);
    }
    return s;
  };

  /** The reply for a failed command; faults that are not a reply of ours are logged with their cause. */
  const refusal = (stage: string, session: SMTPServerSession, err: unknown): ReplyError => {
    const where = { kind, cid: session.id, client: session.remoteAddress, stage, err };
    if (err instanceof RelayError) {
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
    s.hop = await NextHop.open({ host: l.relay.host, port: l.relay.port, name: l.hostname, timeoutMs: l.relayTimeoutMs, tls: l.relayTls });
    s.open = false;
    return s.hop;
  }

  const server = new SMTPServer({
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
    disabledCommands: initial.tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    ...(initial.tls ? { key: readFileSync(initial.tls.key), cert: readFileSync(initial.tls.cert) } : {}),
    logger: false,

    onConnect(session, callback) {
      // The socket's own address: XFORWARD later rewrites session.remoteAddress.
      if (!allowed(session.remoteAddress)) {
        deps.log.warn({ kind, client: session.remoteAddress }, 'client refused: not in allow_clients');
        metrics.clientRefused(kind);
        callback(new ReplyError(554, `Access denied: ${session.remoteAddress} may not use this ${kind === 'out' ? 'signing' : 'verifying'} proxy`));
        return;
      }
      callback();
    },

    onMailFrom(address, session, callback) {
      // Connecting now, so that a next hop that is down refuses the sender.
      hopFor(session).then(
        () => {
          const s = state(session);
          s.sender = address;
          s.accepted = [];
          callback();
        },
        (err: unknown) => callback(refusal('MAIL', session, err)),
      );
    },

    onRcptTo(address, session, callback) {
      void (async () => {
        const s = state(session);
        // A next hop lost after it took MAIL has lost this transaction with it.
        if (s.open && (!s.hop || s.hop.broken)) throw new ReplyError(451, 'Next hop connection lost; try again later');
        const hop = await hopFor(session);
        const rcpt = `RCPT TO:<${address.address}>${params(address.args, hop, RCPT_PARAMS)}`;
        const sender = s.sender;
        if (!sender) {
          const reply = await hop.command(rcpt);
          if (!isPositive(reply)) throw fromReply(reply);
          s.accepted.push(address.address);
          return;
        }
        const lines = [
          ...(s.open ? ['RSET'] : []),
          ...hop.xforwardCommands(forwardedAttributes(session)),
          `MAIL FROM:<${sender.address}>${params(sender.args, hop, MAIL_PARAMS)}`,
          rcpt,
        ];
        const mailAt = lines.length - 2;
        // XFORWARD is advisory (a refusal costs only the log attributes); RSET and MAIL are not.
        const replies = await hop.commands(lines, (k, r) => ((k === 0 && s.open) || k >= mailAt) && !isPositive(r));
        if (s.open) {
          const reset = replies[0]!;
          if (!isPositive(reset)) {
            // Out of step with us: a new connection for the next try.
            hop.close();
            throw new RelayError('protocol', `next hop refused RSET: ${reset.code} ${replyText(reset)}`);
          }
          s.open = false;
        }
        const mail = replies[mailAt]!;
        if (!isPositive(mail)) throw fromReply(mail);
        s.open = true;
        s.sender = undefined;
        const reply = replies[mailAt + 1]!;
        if (!isPositive(reply)) throw fromReply(reply);
        s.accepted.push(address.address);
      })().then(
        () => callback(),
        (err: unknown) => callback(refusal('RCPT', session, err)),
      );
    },

    onData(stream, session, callback) {
      const s = state(session);
      s.busy = true;
      active++;
      metrics.inFlight(kind, 1);
      const started = process.hrtime.bigint();
      const size = { bytes: 0 };
      const account = (code: number): void => metrics.transaction(kind, code, size.bytes, Number(process.hrtime.bigint() - started) / 1e9);
      transaction(stream, session, size)
        .finally(() => {
          s.busy = false;
          active--;
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
  });
  server.on('error', (err) => deps.log.error({ kind, err }, 'listener error'));

  /** One message: receive, sign or verify, relay; the result is what smtp-server replies. */
  async function transaction(stream: SMTPServerDataStream, session: SMTPServerSession, size: { bytes: number }): Promise<string | (string | Error)[]> {
    const started = process.hrtime.bigint();
    const config = deps.config();
    const l = listenerOf(config, kind);
    const s = state(session);
    const logBase = { kind, cid: session.id, client: session.remoteAddress, from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', rcpt: session.envelope.rcptTo.map((r) => r.address) };
    let prefix = '';
    let blockOut: Buffer | undefined;
    const fields: Record<string, unknown> = {};
    let outcome: (() => Promise<void>) | undefined;

    const received = await receive(stream, {
      maxHeaderBytes: l.maxHeaderBytes,
      maxMessageBytes: l.maxMessageBytes,
      spoolThresholdBytes: l.spoolThresholdBytes,
      ...(l.spoolDir !== undefined ? { spoolDir: l.spoolDir } : {}),
      onHeaders: async (headerBlock): Promise<BodyHandler> => {
        const headers = headerBlock.toString('latin1');
        const parsed = parseHeaderBlock(headers);
        if (parsed.length > l.maxHeaderFields) throw new ReplyError(552, `Too many header fields: ${parsed.length}, the limit is ${l.maxHeaderFields}`);
        const messageId = parsed.find((f) => f.key === 'message-id');
        if (messageId) fields['messageId'] = messageId.raw.slice(messageId.raw.indexOf(':') + 1).trim();
        if (kind === 'out') {
          const author = authorDomain(parsed);
          fields['authorDomain'] = author.ok ? author.domain : null;
          const authorName = author.ok ? author.domain : null;
          const plan = await planSignatures(config.signing, authorName, deps.lookup);
          if (plan.kind === 'tempfail') {
            metrics.signing(authorName, 'tempfail', []);
            throw new ReplyError(451, `Not signed, try again later: ${plan.reason}`);
          }
          if (plan.kind === 'unsigned') {
            const reason = author.ok ? plan.reason : author.reason;
            if (config.signing.unsigned === 'refuse') {
              metrics.signing(authorName, 'refused', []);
              throw new ReplyError(550, `Refused: no signing rule for this message (${reason})`);
            }
            metrics.signing(authorName, 'unsigned', []);
            fields['unsigned'] = reason;
            blockOut = headerBlock;
            return { update: () => {} };
          }
          const signer = new MessageSigner(parsed, plan.signers.map(toSignRequest));
          blockOut = headerBlock;
          outcome = async () => {
            // With other transactions under way, the RSA operation goes to the
            // thread pool so that their I/O is not held up behind it; alone,
            // the hand-over would cost more than it saves.
            prefix = (active > 1 ? await signer.finishAsync(now()) : signer.finish(now())).join('');
            fields['signatures'] = plan.signers.map((x) => ({ d: x.domain, s: x.selector, a: x.algorithm }));
            metrics.signing(plan.signers[0]!.domain, 'signed', plan.signers);
          };
          return signer;
        }
        const inConfig = l as InListenerConfig;
        const verifier = new MessageVerifier(parsed, { maxSignatures: inConfig.maxSignatures, allowSha1: inConfig.allowSha1, allowShortKeys: inConfig.allowShortKeys });
        const stripped = stripForgedResults(headerBlock, inConfig.authservId);
        if (stripped.removed > 0) fields['forgedResultsRemoved'] = stripped.removed;
        blockOut = stripped.block;
        outcome = async () => {
          const names = verifier.keyQueries();
          const answers = await Promise.all(names.map(async (n) => [n, await deps.lookup(n)] as [string, KeyAnswer]));
          const outcomes: DkimOutcome[] = verifier.finish(new Map(answers), now());
          prefix = formatAuthenticationResults(inConfig.authservId, outcomes);
          fields['results'] = outcomes.map((o) => ({ result: o.result, d: o.sig.d, s: o.sig.s, a: o.sig.a, ...('reason' in o ? { reason: o.reason } : {}) }));
          metrics.verified(outcomes);
        };
        return verifier;
      },
    }).catch(async (err: unknown) => {
      // Nothing was relayed: close the next hop's half-open transaction.
      if (s.hop && !s.hop.broken && s.open) await s.hop.command('RSET').catch(() => undefined);
      s.open = false;
      throw err;
    });

    size.bytes = received.bytes;
    if (received.kind !== 'ok') {
      if (s.hop && !s.hop.broken) await s.hop.command('RSET').catch(() => undefined);
      s.open = false;
      messageLog.info({ ...logBase, bytes: received.bytes, refused: received.kind }, 'message refused');
      throw received.kind === 'too-large'
        ? new ReplyError(552, `Message exceeds the size limit of ${l.maxMessageBytes} bytes`)
        : new ReplyError(552, `Header block exceeds the limit of ${l.maxHeaderBytes} bytes`);
    }

    try {
      if (outcome) await outcome();
      const hop = s.hop;
      if (!hop || hop.broken) throw new ReplyError(451, 'Next hop connection lost before DATA; try again later');
      const body = await received.spool.reader();
      const head = [...(prefix ? [Buffer.from(prefix, 'latin1')] : []), blockOut!, CRLF];
      const parts = Array.isArray(body)
        ? [...head, ...body]
        : (async function* () {
            yield* head;
            yield* body as AsyncIterable<Buffer>;
          })();
      let replies: Reply[];
      try {
        // CHUNKING (Postfix offers it): the message goes with its command, a round trip fewer than DATA.
        const size = head.reduce((n, b) => n + b.length, received.spool.bytes);
        replies = hop.extensions.has('CHUNKING') ? await hop.bdat(parts, size, s.accepted.length) : await hop.data(parts, s.accepted.length);
      } catch (err) {
        hop.close();
        throw err;
      }
      s.open = false;
      for (const r of replies) metrics.relay(kind, r.code);
      const latencyMs = Number(process.hrtime.bigint() - started) / 1e6;
      messageLog.info({ ...logBase, ...fields, bytes: received.bytes, relay: replies.map((r) => `${r.code} ${replyText(r)}`), latencyMs: Math.round(latencyMs * 10) / 10 }, 'message relayed');
      if (l.protocol === 'lmtp') {
        const perRecipient = session.envelope.rcptTo.map((_, k) => replies[Math.min(k, replies.length - 1)]!);
        return perRecipient.map((r) => (isPositive(r) ? replyText(r) : fromReply(r)));
      }
      const reply = replies[0]!;
      if (!isPositive(reply)) throw fromReply(reply);
      return replyText(reply);
    } catch (err) {
      messageLog.warn({ ...logBase, ...fields, bytes: received.bytes, err: err instanceof Error ? err.message : String(err) }, 'message not relayed');
      throw err;
    } finally {
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
