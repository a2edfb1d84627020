import { parseArgs } from 'node:util';
import type { ProxyConfig, Signer } from '../config/types.js';
import { DEFAULT_CONFIG, loadOrFail } from './config.js';
import { EXIT } from './output.js';
import { table } from './table.js';

export const CHECK_CONFIG_HELP = `Usage: dkim-proxy check-config [--config FILE]

Validates the configuration (every error at once, with file, line and key),
loads every private key, and prints the effective signing table.
Exit status: 0 when valid, 78 when not.

Options:
  -c, --config FILE   the configuration (default: ${DEFAULT_CONFIG})
`;

const canon = (s: Signer): string => `${s.canonicalization.header}/${s.canonicalization.body}`;

export function describeConfig(config: ProxyConfig): string {
  let out = '';
  const l = (name: string, x: ProxyConfig['out']): string =>
    x ? `${name}: ${x.listen.host}:${x.listen.port} -> ${x.relay.host}:${x.relay.port} (${x.protocol}; clients ${x.allowClients.join(', ')})\n` : `${name}: off\n`;
  out += l('out', config.out) + l('in', config.in);
  if (config.in) out += `in: authserv-id ${config.in.authservId}\n`;
  out += `dns: ${config.dns.servers.length ? config.dns.servers.join(', ') : 'system resolvers'}, timeout ${config.dns.timeoutMs} ms\n\n`;
  const rows: string[][] = [['author domain', 'd=', 's=', 'algorithm', 'canon', 'policy', 'key', 'also']];
  for (const b of config.signing.domains.values()) {
    rows.push([b.subdomains ? `${b.name} (+subdomains)` : b.name, b.signer.domain, b.signer.selector, b.signer.algorithm, canon(b.signer), b.policy, b.signer.keySource, b.additionalSignatures.join(',') || '-']);
  }
  rows.push(['(any other)', '-', '-', '-', '-', config.signing.unsigned === 'relay' ? 'relay unsigned' : 'refuse', '-', config.signing.defaultAdditional.join(',') || '-']);
  out += table(rows);
  if (config.signing.signatures.size > 0) {
    out += '\n';
    const sigRows: string[][] = [['signature', 'd=', 's=', 'algorithm', 'canon', 'policy', 'key']];
    for (const s of config.signing.signatures.values()) sigRows.push([s.name, s.signer.domain, s.signer.selector, s.signer.algorithm, canon(s.signer), s.policy, s.signer.keySource]);
    out += table(sigRows);
  }
  if (config.signing.singleSignature) out += '\nsingle_signature: only the first signature of each plan is added\n';
  return out;
}

export async function checkConfigCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c', default: DEFAULT_CONFIG }, help: { type: 'boolean', short: 'h', default: false } } });
  if (values.help) {
    process.stdout.write(CHECK_CONFIG_HELP);
    return EXIT.ok;
  }
  const config = await loadOrFail(values.config);
  process.stdout.write(`${values.config}: OK\n${describeConfig(config)}`);
  return EXIT.ok;
}
