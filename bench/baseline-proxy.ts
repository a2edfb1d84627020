/**
 * The benchmark's baselines: a minimal Node proxy (smtp-server in, an SMTP
 * client out, 250 only after the next hop's 250), unsigned or signing with
 * mailauth 4.x. It does none of our checks (no limits, no spool, no logging)
 * and takes RCPT without asking the next hop.
 *
 * Two clients out:
 * - `nodemailer`: a pooled nodemailer transport sending the raw message, as a
 *   Node developer writes such a proxy. This is the issue's baseline: it was
 *   measured before any code of ours, and this one comes close to its figures
 *   on this machine (2,100-4,800 msg/s unsigned and 450-790 with mailauth,
 *   as the machine's speed drifts, against the issue's 2,400 and 500).
 * - `ours`: one connection per client session through our own SMTP client,
 *   which pipelines the envelope with DATA; a much faster and so harder
 *   baseline, kept beside the issue's.
 *
 * Prints its port.
 * `authenticate`: mailauth's authenticate() (SPF, DKIM, DMARC, ARC) on each
 * message, its headers prepended, DNS from BENCH_DNS (host:port) as `in`'s.
 *
 * Usage: node baseline-proxy.js none|mailauth|authenticate nodemailer|ours RELAY_PORT [KEY_FILE]
 */
import { Resolver } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import nodemailer from 'nodemailer';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { NextHop } from '../src/relay/client.js';

type MailauthSign = (input: Buffer, options: unknown) => Promise<{ signatures: string; errors: unknown[] }>;
type MailauthAuthenticate = (input: Buffer, options: unknown) => Promise<{ headers: string }>;
const require = createRequire(import.meta.url);
const { dkimSign } = require('mailauth/lib/dkim/sign') as { dkimSign: MailauthSign };
const { authenticate } = require('mailauth') as { authenticate: MailauthAuthenticate };
const benchResolver = new Resolver({ timeout: 5000, tries: 1 });
if (process.env['BENCH_DNS']) benchResolver.setServers([process.env['BENCH_DNS']]);

const [mode = 'none', client = 'nodemailer', relayPort = '0', keyFile] = process.argv.slice(2);
const privateKey = mode === 'mailauth' ? readFileSync(keyFile!, 'utf8') : '';
const refused = (code: number): Error => Object.assign(new Error('next hop refused'), { responseCode: code });

type Relay = (session: SMTPServerSession, message: Buffer[]) => Promise<void>;

function nodemailerRelay(): Relay {
  // As many pooled connections as the bench has client connections at most: one each, as `ours` has.
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: Number(relayPort), ignoreTLS: true, pool: true, maxConnections: 64, maxMessages: Infinity });
  return async (session, message) => {
    const envelope = { from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address) };
    await transport.sendMail({ envelope, raw: Buffer.concat(message) });
  };
}

/** `ours`: the next-hop connection of each client session, by session id. */
const hops = new Map<string, NextHop>();

function ourRelay(): Relay {
  return async (session, message) => {
    let hop = hops.get(session.id);
    if (!hop || hop.broken) {
      hop = await NextHop.open({ host: '127.0.0.1', port: Number(relayPort), name: 'baseline.test', timeoutMs: 30_000 });
      hops.set(session.id, hop);
    }
    const rcpts = session.envelope.rcptTo.map((r) => `RCPT TO:<${r.address}>`);
    const replies = await hop.pipeline([`MAIL FROM:<${session.envelope.mailFrom ? session.envelope.mailFrom.address : ''}>`, ...rcpts, 'DATA']);
    const go = replies.at(-1)!;
    if (go.code !== 354) throw refused(go.code);
    const [done] = await hop.body(message, 1);
    if (done!.code !== 250) throw refused(done!.code);
  };
}

async function signed(message: Buffer, session: SMTPServerSession): Promise<Buffer[]> {
  if (mode === 'authenticate') {
    const { headers } = await authenticate(message, {
      ip: session.remoteAddress,
      helo: session.hostNameAppearsAs,
      sender: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
      mta: 'bench.test',
      resolver: (name: string, type: string) => benchResolver.resolve(name, type),
    });
    return [Buffer.from(headers, 'latin1'), message];
  }
  if (mode !== 'mailauth') return [message];
  // signTime given: mailauth 4.x otherwise sometimes signs a t= other than the one it states.
  const result = await dkimSign(message, {
    signTime: new Date(),
    signatureData: [{ signingDomain: 'example.com', selector: 'bench', privateKey, algorithm: 'rsa-sha256', canonicalization: 'relaxed/relaxed' }],
  });
  return [Buffer.from(result.signatures, 'latin1'), message];
}

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  logger: false,
  maxClients: 1000,
  onData(stream, session, callback) {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      signed(Buffer.concat(chunks), session)
        .then((message) => relay(session, message))
        .then(
          () => callback(null, 'Ok'),
          (err: Error & { responseCode?: number }) => callback(Object.assign(err, { responseCode: err.responseCode ?? 451 })),
        );
    });
  },
  onClose(session) {
    void hops.get(session.id)?.quit();
    hops.delete(session.id);
  },
});
const relay = client === 'ours' ? ourRelay() : nodemailerRelay();
server.listen(0, '127.0.0.1', () => {
  const a = server.server.address();
  process.stdout.write(`${typeof a === 'object' && a ? a.port : 0}\n`);
});
process.on('SIGTERM', () => process.exit(0));
