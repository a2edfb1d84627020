/**
 * The benchmark's baselines, as the issue measured them: a minimal Node
 * proxy (smtp-server in, one SMTP client connection per session out, 250 only
 * after the next hop's 250), unsigned or signing with mailauth 4.x. It keeps
 * nothing of ours but the SMTP client, and does none of our checks (no
 * limits, no spool, no logging). Prints its port.
 * Usage: node baseline-proxy.js none|mailauth RELAY_PORT [KEY_FILE]
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { NextHop } from '../src/relay/client.js';

type MailauthSign = (input: Buffer, options: unknown) => Promise<{ signatures: string; errors: unknown[] }>;
const require = createRequire(import.meta.url);
const { dkimSign } = require('mailauth/lib/dkim/sign') as { dkimSign: MailauthSign };

const [mode = 'none', relayPort = '0', keyFile] = process.argv.slice(2);
const privateKey = mode === 'mailauth' ? readFileSync(keyFile!, 'utf8') : '';
const hops = new Map<string, NextHop>();

async function hopFor(session: SMTPServerSession): Promise<NextHop> {
  let hop = hops.get(session.id);
  if (!hop || hop.broken) {
    hop = await NextHop.open({ host: '127.0.0.1', port: Number(relayPort), name: 'baseline.test', timeoutMs: 30_000 });
    hops.set(session.id, hop);
  }
  return hop;
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
      void (async () => {
        const message = Buffer.concat(chunks);
        let prefix = '';
        if (mode === 'mailauth') {
          // signTime given: mailauth 4.x otherwise sometimes signs a t= other than the one it states.
          const signed = await dkimSign(message, {
            signTime: new Date(),
            signatureData: [{ signingDomain: 'example.com', selector: 'bench', privateKey, algorithm: 'rsa-sha256', canonicalization: 'relaxed/relaxed' }],
          });
          prefix = signed.signatures;
        }
        const hop = await hopFor(session);
        const rcpts = session.envelope.rcptTo.map((r) => `RCPT TO:<${r.address}>`);
        const replies = await hop.pipeline([`MAIL FROM:<${session.envelope.mailFrom ? session.envelope.mailFrom.address : ''}>`, ...rcpts, 'DATA']);
        const go = replies.at(-1)!;
        if (go.code !== 354) throw Object.assign(new Error('next hop refused'), { responseCode: go.code });
        const [done] = await hop.body([Buffer.from(prefix, 'latin1'), message], 1);
        if (done!.code !== 250) throw Object.assign(new Error('next hop refused'), { responseCode: done!.code });
      })().then(
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
server.listen(0, '127.0.0.1', () => {
  const a = server.server.address();
  process.stdout.write(`${typeof a === 'object' && a ? a.port : 0}\n`);
});
process.on('SIGTERM', () => process.exit(0));
