import { parseArgs } from 'node:util';
import { normalizeLineEnds } from '../dkim/index.js';
import { explainMessage } from '../dkim/explain.js';
import { createKeyLookup } from '../dns/resolver.js';
import { readMessage } from './io.js';
import { EXIT, messageArgument, millisecondsOption, usageError } from './output.js';
import { paint } from './style.js';

export const EXPLAIN_HELP = `Usage: dkim-proxy explain [MESSAGE] [--original SENT] [--dns-server HOST:PORT] [--json]

Says, for each DKIM-Signature of MESSAGE (a file, or stdin; line ends made
CRLF first, as verify does), whether it verifies and, when it does not, why,
in one word: ok, body-changed, header-changed, key-missing, key-mismatch,
key-revoked, key-syntax, expired, future, syntax, dns-temporary, weak-key,
sha1 or unsupported. Then the detail (the expected and computed body hash,
what l= covers, the signed header fields as the verifier hashed them, z=
copies that differ from the fields now) and the fix, in a sentence.

The body is judged before the header: a re-encoded body is body-changed even
when Content-Transfer-Encoding was signed too. An RSA signature that does not
verify is header-changed when it is still a valid signature of the published
key (the header hash differs), key-mismatch when it is not.

With --original SENT (the message as it was sent: the sender's Sent folder,
a copy from our own log), each signature also lists what changed in what it
covers, compared in canonical form (what the verifier hashed), as one of:
8bit-reencoded, line-wrapped, whitespace-changed, header-refolded,
header-modified, header-added (a field over-signing guarded against),
header-removed, body-appended (a footer; says whether l= covered it),
body-truncated, line-endings, body-modified; with where (a field, or a body
line), the two versions and the fix. An unsigned field added on the way
(Received) is no change, nor is a refold that relaxed canonicalization hides.

Exit status: 0 when every signature is ok, 1 otherwise (and for a message
with no signature).

Options:
      --dns-server HOST:PORT   DNS server to ask (repeatable; default: the system's)
      --timeout MS             DNS timeout per lookup (default 5000)
      --original SENT          the message as it was sent: say what changed since
      --json                   print one object per signature, for scripts
`;

/** Line ends and tabs shown, not obeyed: what differs is often exactly them. */
function visible(text: string): string {
  return text.replace(/\r/g, '\\r').replace(/\n/g, '\\n').replace(/\t/g, '\\t');
}

export async function explainCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'dns-server': { type: 'string', multiple: true },
      original: { type: 'string' },
      timeout: { type: 'string', default: '5000' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(EXPLAIN_HELP);
    return EXIT.ok;
  }
  const messageFile = messageArgument(positionals, 'explain');
  const timeoutMs = millisecondsOption(values.timeout);
  const message = normalizeLineEnds(await readMessage(messageFile));
  const lookup = createKeyLookup({ servers: values['dns-server'] ?? [], timeoutMs });
  const original = values.original === undefined ? undefined : normalizeLineEnds(await readMessage(values.original));
  const explained = await explainMessage(message, lookup, Math.floor(Date.now() / 1000), original);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(explained, null, 2)}\n`);
  } else if (explained.length === 0) {
    process.stdout.write('no DKIM-Signature: nothing to explain\n');
  } else {
    const p = paint();
    const width = Math.max(...explained.map((e) => e.cause.length));
    for (const e of explained) {
      const good = e.cause === 'ok';
      process.stdout.write(`${good ? p.good(e.cause.padEnd(width)) : p.bad(e.cause.padEnd(width))}  signature ${e.index + 1}: d=${e.d ?? '?'} s=${e.s ?? '?'} a=${e.a ?? '?'} (${e.result}${e.reason ? `: ${e.reason}` : ''})\n`);
      const pad = ' '.repeat(width + 2);
      const d = e.detail;
      if (!good) process.stdout.write(`${pad}checked: ${d.check}${d.text ? ` (${d.text})` : ''}\n`);
      if (d.expectedBodyHash !== null && e.cause === 'body-changed') process.stdout.write(`${pad}bh= ${d.expectedBodyHash}\n${pad}now ${d.computedBodyHash}\n`);
      if (d.bodyLength) process.stdout.write(`${pad}l=${d.bodyLength.signed} of ${d.bodyLength.total} canonical octets (${d.bodyLength.total - d.bodyLength.signed} unsigned)\n`);
      if (e.cause === 'header-changed' && d.signedHeaders.length > 0) process.stdout.write(`${pad}signed header fields, as the verifier hashed them:\n${d.signedHeaders.map((h) => `${pad}  ${h}\n`).join('')}`);
      for (const c of d.changedCopies) process.stdout.write(`${pad}${p.warn('changed')} ${c.name}:\n${pad}  signed: ${c.signed}\n${pad}  now:    ${c.now}\n`);
      if (!good) process.stdout.write(`${pad}fix: ${e.fix}\n`);
      if (e.changes !== null) {
        if (e.changes.length === 0) process.stdout.write(`${pad}since it was sent: nothing it signed changed\n`);
        else process.stdout.write(`${pad}since it was sent:\n`);
        const kindWidth = Math.max(0, ...e.changes.map((c) => c.kind.length));
        for (const c of e.changes) {
          process.stdout.write(`${pad}  ${p.warn(c.kind.padEnd(kindWidth))}  ${c.where}\n`);
          const inner = `${pad}  ${' '.repeat(kindWidth)}  `;
          if (c.signed !== null) process.stdout.write(`${inner}signed: ${visible(c.signed)}\n`);
          if (c.now !== null) process.stdout.write(`${inner}now:    ${visible(c.now)}\n`);
          process.stdout.write(`${inner}fix: ${c.fix}\n`);
        }
      }
    }
  }
  return explained.length > 0 && explained.every((e) => e.cause === 'ok') ? EXIT.ok : EXIT.notVerified;
}
