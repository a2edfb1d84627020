import { parseArgs } from 'node:util';
import { formatAuthenticationResults, normalizeLineEnds, verifyMessage, type DkimOutcome } from '../dkim/index.js';
import { createKeyLookup } from '../dns/resolver.js';
import { readMessage } from './io.js';
import { EXIT, usageError } from './output.js';
import { paint, type Paint } from './style.js';

export const VERIFY_HELP = `Usage: dkim-proxy verify [options] [MESSAGE] [--json]

Verifies every DKIM-Signature of MESSAGE (a file, or stdin). Prints one line
per signature, then the Authentication-Results header the 'in' proxy would add.

Exit status: 0 when at least one signature passes and none fails;
75 when nothing passed only because of temporary DNS errors; 1 otherwise.

Options:
      --dns-server HOST:PORT   DNS server to ask (repeatable; default: the system's)
      --timeout MS             DNS timeout per lookup (default 5000)
      --authserv-id ID         authserv-id for the header (default: localhost)
      --max-signatures N       check at most N signatures (default 10)
      --legacy-sha1            accept rsa-sha1 signatures
      --json                   print {results, authenticationResults} as JSON
`;

function describe(o: DkimOutcome, p: Paint): string {
  const s = o.sig;
  const parts = [p.status(o.result) + ' '.repeat(Math.max(0, 9 - o.result.length)), `d=${s.d ?? '?'}`, `s=${s.s ?? '?'}`, `a=${s.a ?? '?'}`];
  if ('reason' in o) parts.push(`reason="${o.reason}${o.detail ? `: ${o.detail}` : ''}"`);
  if ('testing' in o && o.testing) parts.push('(key in testing mode)');
  if ('unsignedBodyBytes' in o && o.unsignedBodyBytes !== undefined) parts.push(`(l= leaves ${o.unsignedBodyBytes} octets unsigned)`);
  return parts.join(' ');
}

export async function verifyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'dns-server': { type: 'string', multiple: true },
      timeout: { type: 'string', default: '5000' },
      'authserv-id': { type: 'string', default: 'localhost' },
      'max-signatures': { type: 'string', default: '10' },
      'legacy-sha1': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(VERIFY_HELP);
    return EXIT.ok;
  }
  if (positionals.length > 1) throw usageError('verify takes at most one MESSAGE file');
  const timeoutMs = Number(values.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw usageError(`--timeout: expected milliseconds, got "${values.timeout}"`);
  const maxSignatures = Number(values['max-signatures']);
  if (!Number.isInteger(maxSignatures) || maxSignatures <= 0) throw usageError(`--max-signatures: expected a positive number, got "${values['max-signatures']}"`);

  const message = normalizeLineEnds(await readMessage(positionals[0]));
  const lookup = createKeyLookup({ servers: values['dns-server'] ?? [], timeoutMs });
  const outcomes = await verifyMessage(message, lookup, Math.floor(Date.now() / 1000), { maxSignatures, allowSha1: values['legacy-sha1'] });
  const header = formatAuthenticationResults(values['authserv-id'], outcomes);
  if (values.json) {
    const results = outcomes.map((o) => ({
      result: o.result,
      d: o.sig.d ?? null,
      s: o.sig.s ?? null,
      a: o.sig.a ?? null,
      reason: 'reason' in o ? o.reason : null,
      detail: 'detail' in o && o.detail !== undefined ? o.detail : null,
      testing: 'testing' in o ? o.testing : false,
    }));
    process.stdout.write(`${JSON.stringify({ results, authenticationResults: header.replace(/\r\n[ \t]*/g, ' ').trim() }, null, 2)}\n`);
  } else {
    const p = paint();
    if (outcomes.length === 0) process.stdout.write(`${p.status('none')}      no DKIM-Signature\n`);
    for (const o of outcomes) process.stdout.write(`${describe(o, p)}\n`);
    process.stdout.write(header.replace(/\r\n/g, '\n'));
  }

  // RFC 6376 §3.6.1: a key in testing mode counts as unsigned, so it neither passes nor fails here.
  const counted = outcomes.filter((o) => !('testing' in o && o.testing));
  if (counted.some((o) => o.result === 'fail')) return EXIT.notVerified;
  if (counted.some((o) => o.result === 'pass')) return EXIT.ok;
  if (counted.length > 0 && counted.every((o) => o.result === 'temperror')) return EXIT.tempFail;
  return EXIT.notVerified;
}
