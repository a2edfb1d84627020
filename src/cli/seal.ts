import { parseArgs } from 'node:util';
import { MessageSealer, PreparedSealer, ARC_SIGNED_HEADERS } from '../arc/seal.js';
import { findBodyStart, normalizeLineEnds, parseHeaderBlock, SignRequestError } from '../dkim/index.js';
import { readMessage } from './io.js';
import { EXIT, messageArgument, usageError } from './output.js';
import { loadKeyFile } from './sign.js';

export const SEAL_HELP = `Usage: dkim-proxy seal --domain D --selector S --key FILE --authserv-id ID [options] [MESSAGE]

Adds one ARC set (RFC 8617) to MESSAGE (a file, or stdin) and writes the
sealed message to stdout: ARC-Seal, ARC-Message-Signature and
ARC-Authentication-Results on top, the message after them byte for byte
(line ends normalized to CRLF first).

The ARC-Authentication-Results combines every Authentication-Results field of
ID. The chain's state comes from their arc= result, with no DNS lookup: no
arc= and no ARC sets gives cv=none, arc=pass cv=pass, arc=fail cv=fail (the
new set then seals only itself). Exit status 1, with the reason on stderr and
nothing on stdout, when the chain cannot take a set: its newest seal says
cv=fail, it already has 50 sets, or its sets and the arc= result disagree.

Options:
  -d, --domain D          sealing domain (the seal's d=)
  -s, --selector S        selector of the sealing key
  -k, --key FILE          private key, PEM (PKCS#1 or PKCS#8), RSA (1024 bits or more) or Ed25519
      --authserv-id ID    whose Authentication-Results are sealed
      --timestamp T       t= of the seal and the AMS, seconds since the epoch (default: now)
      --headers LIST      colon-separated names the AMS signs, with ? * + modifiers
                          (default: ${ARC_SIGNED_HEADERS.join(':')})
`;

export async function sealCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      domain: { type: 'string', short: 'd' },
      selector: { type: 'string', short: 's' },
      key: { type: 'string', short: 'k' },
      'authserv-id': { type: 'string' },
      timestamp: { type: 'string' },
      headers: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(SEAL_HELP);
    return EXIT.ok;
  }
  const messageFile = messageArgument(positionals, 'seal');
  if (!values.domain || !values.selector || !values.key || !values['authserv-id']) throw usageError('seal needs --domain, --selector, --key and --authserv-id (see dkim-proxy seal --help)');
  let now = Math.floor(Date.now() / 1000);
  if (values.timestamp !== undefined) {
    if (!/^[0-9]{1,12}$/.test(values.timestamp)) throw usageError(`--timestamp: expected seconds since the epoch, got "${values.timestamp}"`);
    now = Number(values.timestamp);
  }
  const key = await loadKeyFile(values.key);
  let sealer: PreparedSealer;
  try {
    sealer = PreparedSealer.prepare({
      domain: values.domain,
      selector: values.selector,
      key,
      authservId: values['authserv-id'],
      ...(values.headers !== undefined ? { headers: values.headers.split(':').filter(Boolean) } : {}),
    });
  } catch (err) {
    if (err instanceof SignRequestError) throw usageError(err.message);
    throw err;
  }
  const message = normalizeLineEnds(await readMessage(messageFile));
  const { headerEnd, bodyStart } = findBodyStart(message);
  const sealing = new MessageSealer(sealer);
  sealing.update(message.subarray(bodyStart));
  const result = sealing.seal(parseHeaderBlock(message.toString('latin1', 0, headerEnd)), now);
  if (!result.ok) {
    process.stderr.write(`dkim-proxy: not sealed: ${result.reason}\n`);
    return EXIT.notVerified;
  }
  process.stderr.write(`sealed: i=${result.instance} cv=${result.cv} d=${sealer.domain} s=${sealer.selector}\n`);
  process.stdout.write(Buffer.concat([Buffer.from(result.fields.join(''), 'latin1'), message]));
  return EXIT.ok;
}
