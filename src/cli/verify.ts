import { parseArgs } from 'node:util';
import { normalizeLineEnds, outcomeFields, viewOutcome, type DkimOutcome } from '../dkim/index.js';
import { processMessage } from '../pipeline/offline.js';
import { VerifyingProcessor } from '../pipeline/verify.js';
import { createKeyLookup } from '../dns/resolver.js';
import { createWireResolver } from '../dns/wire.js';
import type { DmarcOutcome } from '../dmarc/evaluate.js';
import { NO_CHAIN, type ArcOutcome } from '../arc/verify.js';
import type { Envelope } from '../pipeline/message.js';
import { spfJson } from './spf.js';
import { isIP } from 'node:net';
import { readMessage } from './io.js';
import { EXIT, messageArgument, millisecondsOption, usageError } from './output.js';
import { paint, type Paint } from './style.js';

export const VERIFY_HELP = `Usage: dkim-proxy verify [options] [MESSAGE] [--json]

Verifies every DKIM-Signature of MESSAGE (a file, or stdin) and its ARC chain
(RFC 8617). Prints one line per signature, then the Authentication-Results
header the 'in' proxy would add.
With --client-ip it checks SPF for that client and DMARC for the From domain
too, as 'in' does for the client Postfix names.

Exit status: 0 when at least one signature passes and none fails (with
--client-ip: when DMARC passes, or the domain has no DMARC policy and DKIM
passed); 75 when nothing passed only because of temporary DNS errors;
1 otherwise.

Options:
      --client-ip IP           the client that sent the message: runs SPF and DMARC
      --mail-from ADDR         its MAIL FROM (empty or left out: a null sender, checked by --helo)
      --helo NAME              its HELO/EHLO name
      --receiver NAME          this host's name, for SPF's %{r} (default: the authserv-id)
      --dns-server HOST:PORT   DNS server to ask (repeatable; default: the system's)
      --timeout MS             DNS timeout per lookup (default 5000)
      --authserv-id ID         authserv-id for the header (default: localhost)
      --max-signatures N       check at most N signatures (default 10)
      --legacy-sha1            accept rsa-sha1 signatures
      --json                   print {results, spf, dmarc, arc, authenticationResults} as JSON
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
      'client-ip': { type: 'string' },
      'mail-from': { type: 'string', default: '' },
      helo: { type: 'string' },
      receiver: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(VERIFY_HELP);
    return EXIT.ok;
  }
  const messageFile = messageArgument(positionals, 'verify');
  const timeoutMs = millisecondsOption(values.timeout);
  const maxSignatures = Number(values['max-signatures']);
  if (!Number.isInteger(maxSignatures) || maxSignatures <= 0) throw usageError(`--max-signatures: expected a positive number, got "${values['max-signatures']}"`);

  const clientIp = values['client-ip'];
  if (clientIp !== undefined && isIP(clientIp) === 0) throw usageError(`--client-ip: expected an IPv4 or IPv6 address, got "${clientIp}"`);
  const mailFrom = values['mail-from'].replace(/^<|>$/g, '');
  if (mailFrom !== '' && !mailFrom.includes('@')) throw usageError(`--mail-from: expected an address (local@domain), got "${mailFrom}"`);
  if (clientIp === undefined && (mailFrom !== '' || values.helo !== undefined)) throw usageError('--mail-from and --helo are for SPF: give --client-ip too');

  const message = normalizeLineEnds(await readMessage(messageFile));
  const servers = values['dns-server'] ?? [];
  const lookup = createKeyLookup({ servers, timeoutMs });
  const authservId = values['authserv-id'];
  const settings = {
    authservId,
    maxSignatures,
    allowSha1: values['legacy-sha1'],
    allowShortKeys: false,
    checks: clientIp === undefined ? (['dkim', 'arc'] as const) : (['dkim', 'spf', 'dmarc', 'arc'] as const),
    hostname: values.receiver ?? authservId,
    receivedSpf: false,
    rejectFail: false,
    rejectError: false,
    xDkimAuthenticationResults: false,
  };
  const envelope: Envelope = { clientAddress: clientIp, helo: values.helo, mailFrom, rcptTo: [] };
  const processor = new VerifyingProcessor({ settings: () => settings, lookup, dns: createWireResolver({ servers, timeoutMs }), now: () => Math.floor(Date.now() / 1000) });
  const { report } = await processMessage(processor, message, envelope);
  const dkim = report.dkim ?? { outcomes: [], skipped: 0 };
  const outcomes = dkim.outcomes;
  const header = report.authenticationResults;
  if (values.json) {
    const results = outcomes.map(outcomeFields);
    process.stdout.write(
      `${JSON.stringify(
        {
          results,
          ...(dkim.skipped > 0 ? { notChecked: dkim.skipped } : {}),
          ...(report.spf ? { spf: spfJson(report.spf) } : {}),
          ...(report.dmarc ? { dmarc: dmarcJson(report.dmarc) } : {}),
          arc: arcJson(report.arc ?? NO_CHAIN),
          authenticationResults: header.replace(/\r\n[ \t]*/g, ' ').trim(),
        },
        null,
        2,
      )}\n`,
    );
  } else {
    const p = paint();
    if (report.spf) process.stdout.write(`${p.status(report.spf.result)}${' '.repeat(Math.max(0, 9 - report.spf.result.length))} spf ${report.spf.identity}=${report.spf.sender}: ${report.spf.reason}\n`);
    if (outcomes.length === 0) process.stdout.write(`${p.status('none')}      no DKIM-Signature\n`);
    for (const o of outcomes) process.stdout.write(`${describe(o, p)}\n`);
    if (dkim.skipped > 0) process.stdout.write(`${p.status('neutral')}   ${dkim.skipped} more signatures not checked (--max-signatures ${maxSignatures})\n`);
    const a = report.arc;
    if (a && a.result !== 'none') process.stdout.write(`${p.status(a.result)}${' '.repeat(Math.max(0, 9 - a.result.length))} arc i=${a.instance}${a.oldestPass !== undefined ? ` oldest-pass=${a.oldestPass}` : ''}: ${a.reason}\n`);
    const d = report.dmarc;
    if (d) process.stdout.write(`${p.status(d.result)}${' '.repeat(Math.max(0, 9 - d.result.length))} dmarc ${d.domain ?? '?'}${d.policy ? ` p=${d.policy} dis=${d.disposition}` : ''}: ${d.reason}\n`);
    process.stdout.write(header.replace(/\r\n/g, '\n'));
  }

  if (report.dmarc) {
    if (report.dmarc.result === 'pass') return EXIT.ok;
    if (report.dmarc.result === 'temperror') return EXIT.tempFail;
    if (report.dmarc.result === 'fail' || report.dmarc.result === 'permerror') return EXIT.notVerified;
  }
  // RFC 6376 §3.6.1: a key in testing mode counts as unsigned, so it neither passes nor fails here.
  const counted = outcomes.map(viewOutcome).filter((v) => !v.testing);
  if (counted.some((v) => v.result === 'fail')) return EXIT.notVerified;
  if (counted.some((v) => v.result === 'pass')) return EXIT.ok;
  if (counted.length > 0 && counted.every((v) => v.temporary)) return EXIT.tempFail;
  return EXIT.notVerified;
}

/** `verify --json`'s arc object. */
export function arcJson(a: ArcOutcome): Record<string, unknown> {
  return { result: a.result, instance: a.instance, oldestPass: a.oldestPass ?? null, sealer: a.sealer?.d ?? null, reason: a.reason };
}

/** `verify --json`'s dmarc object. */
export function dmarcJson(d: DmarcOutcome): Record<string, unknown> {
  return {
    result: d.result,
    policy: d.policy ?? null,
    disposition: d.disposition ?? null,
    domain: d.domain,
    aligned: { dkim: d.aligned.dkim !== null, spf: d.aligned.spf !== null },
    alignedDomains: { dkim: d.aligned.dkim, spf: d.aligned.spf },
    recordAt: d.recordAt ?? null,
    pct: d.pct ?? null,
    reason: d.reason,
    ...(d.override ? { override: d.override.type, overrideBy: d.override.sealer } : {}),
  };
}
