import { parseArgs } from 'node:util';
import type { Signer } from '../config/types.js';
import { createKeyLookup } from '../dns/resolver.js';
import { checkPublished } from '../policy/published.js';
import { DEFAULT_CONFIG, loadOrFail } from './config.js';
import { EXIT } from './output.js';
import { paint } from './style.js';
import { table } from './table.js';

export const DNS_CHECK_HELP = `Usage: dkim-proxy dns-check [--config FILE] [--dns-server HOST:PORT] [--json]

For every configured domain and signature (each selector of a selectors
list): is the key record published,
well-formed, and the public half of our private key? Is it in testing mode?
Exit status: 0 when every record matches, 1 when one is missing or wrong,
75 when only DNS errors stood in the way, 78 for a bad config.

Options:
  -c, --config FILE          the configuration (default: ${DEFAULT_CONFIG})
      --dns-server HOST:PORT  ask this server instead of [dns] servers (repeatable)
      --json                  print one object per record, for scripts
`;

export async function dnsCheckCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c', default: DEFAULT_CONFIG },
      'dns-server': { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(DNS_CHECK_HELP);
    return EXIT.ok;
  }
  const config = await loadOrFail(values.config);
  const lookup = createKeyLookup({ servers: values['dns-server'] ?? config.dns.servers, timeoutMs: config.dns.timeoutMs });
  const signers = new Map<string, Signer>();
  // Every selector of a rotation: a wrong or missing record is a problem whichever of them it is.
  for (const b of [...config.signing.domains.values(), ...config.signing.signatures.values()]) {
    for (const c of b.candidates) signers.set(`${c.selector}._domainkey.${c.domain}`, c);
  }
  if (signers.size === 0) {
    process.stdout.write(values.json ? '[]\n' : 'no [domain] or [signature] blocks: nothing to check\n');
    return EXIT.ok;
  }
  const colour = paint();
  const rows: string[][] = [];
  const records: Record<string, string>[] = [];
  let bad = 0;
  let temp = 0;
  for (const [name, signer] of signers) {
    const p = await checkPublished(signer, lookup);
    let status: string;
    let detail: string;
    if (p.state === 'match') {
      status = p.testing ? 'testing' : 'ok';
      detail = p.testing ? 'matches, but t=y: receivers treat the mail as unsigned' : `matches ${signer.keySource}`;
    } else {
      status = p.state === 'temperror' ? 'dns-error' : p.state;
      detail = p.detail;
      if (p.state === 'temperror') temp++;
      else bad++;
    }
    rows.push([colour.status(status), name, signer.algorithm, detail]);
    records.push({ status, name, domain: signer.domain, selector: signer.selector, algorithm: signer.algorithm, detail });
  }
  process.stdout.write(values.json ? `${JSON.stringify(records, null, 2)}\n` : table(rows));
  if (bad > 0) return EXIT.notVerified;
  return temp > 0 ? EXIT.tempFail : EXIT.ok;
}
