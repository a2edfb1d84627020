import { parseArgs } from 'node:util';
import { normalizeLineEnds, outcomeFields, viewOutcome, type DkimOutcome } from '../dkim/index.js';
import { processMessage } from '../pipeline/offline.js';
import { VerifyingProcessor } from '../pipeline/verify.js';
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
  const v = viewOutcome(o);
  const s = v.sig;
  const parts = [p.status(v.result) + ' '.repeat(Math.max(0, 9 - v.result.length)), `d=${s.d ?? '?'}`, `s=${s.s ?? '?'}`, `a=${s.a ?? '?'}`];
  if (v.reason !== undefined) parts.push(`reason="${v.reason}${v.detail ? `: ${v.detail}` : ''}"`);
  if (v.testing) parts.push('(key in testing mode)');
  if (v.unsignedBodyBytes !== undefined) parts.push(`(l= leaves ${v.unsignedBodyBytes} octets unsigned)`);
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
  const settings = { authservId: values['authserv-id'], maxSignatures, allowSha1: values['legacy-sha1'], allowShortKeys: false };
  const processor = new VerifyingProcessor({ settings: () => settings, lookup, now: () => Math.floor(Date.now() / 1000) });
  const { report } = await processMessage(processor, message);
  const outcomes = report.dkim.outcomes;
  const header = report.authenticationResults;
  if (values.json) {
    const results = outcomes.map(outcomeFields);
    process.stdout.write(`${JSON.stringify({ results, ...(report.dkim.skipped > 0 ? { notChecked: report.dkim.skipped } : {}), authenticationResults: header.replace(/\r\n[ \t]*/g, ' ').trim() }, null, 2)}\n`);
  } else {
    const p = paint();
    if (outcomes.length === 0) process.stdout.write(`${p.status('none')}      no DKIM-Signature\n`);
    for (const o of outcomes) process.stdout.write(`${describe(o, p)}\n`);
    if (report.dkim.skipped > 0) process.stdout.write(`${p.status('neutral')}   ${report.dkim.skipped} more signatures not checked (--max-signatures ${maxSignatures})\n`);
    process.stdout.write(header.replace(/\r\n/g, '\n'));
  }

  // RFC 6376 §3.6.1: a key in testing mode counts as unsigned, so it neither passes nor fails here.
  const counted = outcomes.map(viewOutcome).filter((v) => !v.testing);
  if (counted.some((v) => v.result === 'fail')) return EXIT.notVerified;
  if (counted.some((v) => v.result === 'pass')) return EXIT.ok;
  if (counted.length > 0 && counted.every((v) => v.temporary)) return EXIT.tempFail;
  return EXIT.notVerified;
}
