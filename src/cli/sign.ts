import { readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import {
  DEFAULT_SIGNED_HEADERS,
  normalizeLineEnds,
  parseCanonicalization,
  parsePrivateKey,
  signMessage,
  SIGNING_ALGORITHMS,
  SignRequestError,
  type SigningAlgorithm,
} from '../dkim/index.js';
import { parseDuration } from '../config/units.js';
import { createKeyLookup } from '../dns/resolver.js';
import { processMessage } from '../pipeline/offline.js';
import { reencodeMessage } from '../pipeline/transport.js';
import { SigningProcessor } from '../pipeline/sign.js';
import { PolicyReply } from '../smtp/replies.js';
import { loadOrFail } from './config.js';
import { readMessage } from './io.js';
import { CliError, EXIT, messageArgument, usageError } from './output.js';

export const SIGN_HELP = `Usage: dkim-proxy sign --config FILE [MESSAGE]
       dkim-proxy sign --domain D --selector S --key FILE [options] [MESSAGE]

Signs MESSAGE (a file, or stdin) and writes the signed message to stdout.
Line ends are normalized to CRLF first; the output is exactly what was signed.

With --config, the signatures are chosen exactly as the 'out' proxy chooses
them (author domain, [domain] blocks, DNS policies, additional signatures).
Exit status 75 when a TempFailIfNotInDNS policy holds the message back, and 1
when no rule signs it and [signing] unsigned = "refuse". With [out]
transport_encoding = "7bit" (the default), a message a 7-bit hop would change
is re-encoded first, as the proxy does; stderr lists each part changed.

Options:
      --config FILE          sign as the proxy would with this configuration
  -d, --domain D             signing domain (d=)
  -s, --selector S           selector (s=)
  -k, --key FILE             private key, PEM (PKCS#1 or PKCS#8)
  -a, --algorithm A          rsa-sha256 (default) | ed25519-sha256 | rsa-sha1 (needs --legacy-sha1)
  -c, --canonicalization C   header/body: relaxed/relaxed (default), simple/simple, relaxed/simple...
      --headers LIST         colon-separated header names to sign, with ? * + modifiers
                             (default: ${DEFAULT_SIGNED_HEADERS.join(':')})
      --no-over-sign         do not over-sign plain header names
  -i, --identity I           agent or user identifier (i=), e.g. @news.example.com
  -x, --expire DURATION      signature lifetime (x=), e.g. 7d, 12h, 3600
  -l, --body-length          sign with l= (lets others append unsigned content)
      --copy-headers         copy the signed headers into z= (debugging)
      --legacy-sha1          allow rsa-sha1 (RFC 8301 forbids it for new signatures)
`;

export async function signCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      domain: { type: 'string', short: 'd' },
      selector: { type: 'string', short: 's' },
      key: { type: 'string', short: 'k' },
      algorithm: { type: 'string', short: 'a', default: 'rsa-sha256' },
      canonicalization: { type: 'string', short: 'c', default: 'relaxed/relaxed' },
      headers: { type: 'string' },
      'no-over-sign': { type: 'boolean', default: false },
      identity: { type: 'string', short: 'i' },
      expire: { type: 'string', short: 'x' },
      'body-length': { type: 'boolean', short: 'l', default: false },
      'copy-headers': { type: 'boolean', default: false },
      'legacy-sha1': { type: 'boolean', default: false },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(SIGN_HELP);
    return EXIT.ok;
  }
  const messageFile = messageArgument(positionals, 'sign');
  if (values.config !== undefined) {
    if (values.domain || values.selector || values.key) throw usageError('--config chooses the signatures; leave out --domain, --selector and --key');
    return signWithConfig(values.config, messageFile);
  }
  if (!values.domain || !values.selector || !values.key) throw usageError('sign needs --domain, --selector and --key (see dkim-proxy sign --help)');
  if (!(SIGNING_ALGORITHMS as readonly string[]).includes(values.algorithm)) {
    throw usageError(`--algorithm: expected one of ${SIGNING_ALGORITHMS.join(', ')}, got "${values.algorithm}"`);
  }
  const c = parseCanonicalization(values.canonicalization);
  if (c === null) throw usageError(`--canonicalization: expected simple|relaxed[/simple|relaxed], got "${values.canonicalization}"`);
  let expiresIn: number | undefined;
  if (values.expire !== undefined) {
    const seconds = parseDuration(values.expire);
    if (seconds === null) throw usageError(`--expire: expected a duration such as 7d, 12h or 3600, got "${values.expire}"`);
    expiresIn = seconds;
  }

  const key = await loadKeyFile(values.key);
  const message = normalizeLineEnds(await readMessage(messageFile));
  let fields: string[];
  try {
    fields = signMessage(
      message,
      [
        {
          domain: values.domain,
          selector: values.selector,
          key,
          algorithm: values.algorithm as SigningAlgorithm,
          canonicalization: c,
          ...(values.headers ? { headers: values.headers.split(':').filter(Boolean) } : {}),
          overSign: !values['no-over-sign'],
          ...(values.identity ? { identity: values.identity } : {}),
          ...(expiresIn ? { expiresIn } : {}),
          bodyLength: values['body-length'],
          copyHeaders: values['copy-headers'],
          allowSha1: values['legacy-sha1'],
        },
      ],
      Math.floor(Date.now() / 1000),
    );
  } catch (err) {
    if (err instanceof SignRequestError) throw usageError(err.message);
    throw err;
  }
  process.stdout.write(Buffer.concat([Buffer.from(fields.join(''), 'latin1'), message]));
  return EXIT.ok;
}

async function signWithConfig(file: string, messageFile: string | undefined): Promise<number> {
  const config = await loadOrFail(file);
  let message = normalizeLineEnds(await readMessage(messageFile));
  if ((config.out?.transportEncoding ?? '7bit') === '7bit') {
    const reencoded = await reencodeMessage(message);
    if (reencoded) {
      message = reencoded.message;
      for (const c of reencoded.result.converted) process.stderr.write(`re-encoded: part ${c.part} (${c.type}) ${c.from} -> ${c.to}: ${c.why}\n`);
      for (const l of reencoded.result.leftAsIs) process.stderr.write(`left as is: part ${l.part}: ${l.why}\n`);
    }
  }
  const lookup = createKeyLookup({ servers: config.dns.servers, timeoutMs: config.dns.timeoutMs });
  const processor = new SigningProcessor({
    signing: () => config.signing,
    lookup,
    now: () => Math.floor(Date.now() / 1000),
    sealer: () => (config.out?.arcSeal ? config.arc?.sealer : undefined),
  });
  let processed;
  try {
    processed = await processMessage(processor, message);
  } catch (err) {
    // The proxy's reply, as an exit status: 4xx try again later, 5xx refused.
    if (err instanceof PolicyReply) throw new CliError(`${err.temporary ? 'not signed, try again later' : 'refused'}: ${err.reason}`, err.temporary ? EXIT.tempFail : EXIT.notVerified);
    throw err;
  }
  const report = processed.report;
  if (report.sealed) process.stderr.write('refused' in report.sealed ? `not sealed: ${report.sealed.refused}\n` : `sealed: i=${report.sealed.instance} cv=${report.sealed.cv}\n`);
  if (report.kind === 'unsigned') {
    process.stderr.write(`not signed: ${report.reason}\n`);
  } else {
    for (const note of report.notes) process.stderr.write(`note: ${note}\n`);
    process.stderr.write(`signed: ${report.signatures.map((s) => `d=${s.d} s=${s.s} a=${s.a}`).join('; ')}\n`);
  }
  process.stdout.write(Buffer.concat([processed.prepend, message]));
  return EXIT.ok;
}

/** Loads a private key file, naming the file in every error; warns when others can read it. */
export async function loadKeyFile(path: string): Promise<import('../dkim/index.js').SigningKey> {
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch (err) {
    throw new CliError(`cannot read key ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, EXIT.noInput);
  }
  const mode = (await stat(path)).mode;
  if (mode & 0o077) process.stderr.write(`warning: key ${path} is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it\n`);
  const parsed = parsePrivateKey(pem);
  if (!parsed.ok) throw new CliError(`key ${path}: ${parsed.message}`, EXIT.dataError);
  return parsed.key;
}
