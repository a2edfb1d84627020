import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { createWireResolver } from '../dns/wire.js';
import { checkSpf, type SpfOutcome } from '../spf/evaluate.js';
import { EXIT, millisecondsOption, usageError } from './output.js';
import { paint } from './style.js';

export const SPF_HELP = `Usage: dkim-proxy spf --ip IP [--mail-from ADDR] [--helo NAME] [options] [--json]

Evaluates SPF (RFC 7208) for a client address, as pyspf's spfquery does:
the MAIL FROM identity, or postmaster@HELO when --mail-from is empty or
left out (a bounce). Prints the result word on the first line (none,
neutral, pass, fail, softfail, temperror, permerror), then why.

A result is data: the exit status is 0 whatever it is, 64 for a usage error.

Options:
      --ip IP                  the client's address (IPv4 or IPv6)
      --mail-from ADDR         the envelope sender (empty: a null sender)
      --helo NAME              the client's HELO/EHLO name
      --receiver NAME          this host's name, for %{r} in explanations (default: unknown)
      --dns-server HOST:PORT   DNS server to ask (repeatable; default: the system's)
      --timeout MS             time limit of each DNS lookup (default 5000)
      --json                   print {result, domain, identity, mechanism, explanation} as JSON
`;

export async function spfCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ip: { type: 'string' },
      'mail-from': { type: 'string', default: '' },
      helo: { type: 'string' },
      receiver: { type: 'string' },
      'dns-server': { type: 'string', multiple: true },
      timeout: { type: 'string', default: '5000' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(SPF_HELP);
    return EXIT.ok;
  }
  if (positionals.length > 0) throw usageError(`spf takes no arguments besides its options, got "${positionals[0]}"`);
  if (values.ip === undefined) throw usageError('spf needs --ip (see dkim-proxy spf --help)');
  if (isIP(values.ip) === 0) throw usageError(`--ip: expected an IPv4 or IPv6 address, got "${values.ip}"`);
  const mailFrom = values['mail-from'].replace(/^<|>$/g, '');
  if (mailFrom !== '' && !mailFrom.includes('@')) throw usageError(`--mail-from: expected an address (local@domain), got "${mailFrom}"`);
  if (mailFrom === '' && values.helo === undefined) throw usageError('a null sender is checked by its HELO name: give --helo (or --mail-from)');
  const timeoutMs = millisecondsOption(values.timeout);

  const dns = createWireResolver({ servers: values['dns-server'] ?? [], timeoutMs });
  const r = await checkSpf({ ip: values.ip, mailFrom, helo: values.helo ?? 'unknown', ...(values.receiver !== undefined ? { receiver: values.receiver } : {}), now: Math.floor(Date.now() / 1000) }, dns);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(spfJson(r), null, 2)}\n`);
  } else {
    const p = paint();
    process.stdout.write(`${p.status(r.result)}\n  ${r.identity} ${r.sender}: ${r.reason}\n${r.explanation !== undefined ? `  explanation: ${r.explanation}\n` : ''}`);
  }
  return EXIT.ok;
}

/** The JSON of an SPF result, for `spf --json` and `verify --json` alike. */
export function spfJson(r: SpfOutcome): Record<string, string | null> {
  return { result: r.result, domain: r.domain, identity: r.identity, mechanism: r.mechanism ?? null, explanation: r.explanation ?? null, reason: r.reason };
}
