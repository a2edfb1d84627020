import { parseArgs } from 'node:util';
import { normalizeLineEnds } from '../dkim/index.js';
import { explainMessage } from '../dkim/explain.js';
import { createKeyLookup } from '../dns/resolver.js';
import { readMessage } from './io.js';
import { EXIT, messageArgument, millisecondsOption, usageError } from './output.js';
import { paint } from './style.js';

export const EXPLAIN_HELP = `Usage: dkim-proxy explain [MESSAGE] [--dns-server HOST:PORT] [--json]

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

Exit status: 0 when every signature is ok, 1 otherwise (and for a message
with no signature).

Options:
      --dns-server HOST:PORT   DNS server to ask (repeatable; default: the system's)
      --timeout MS             DNS timeout per lookup (default 5000)
      --json                   print one object per signature, for scripts
`;

export async function explainCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'dns-server': { type: 'string', multiple: true },
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
  const explained = await explainMessage(message, lookup, Math.floor(Date.now() / 1000));
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
    }
  }
  return explained.length > 0 && explained.every((e) => e.cause === 'ok') ? EXIT.ok : EXIT.notVerified;
}
