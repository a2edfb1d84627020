import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import type { ListenerConfig, ProxyConfig, Signer } from '../config/types.js';
import { DEFAULT_CONFIG, loadOrFail } from './config.js';
import { EXIT } from './output.js';
import { paint, type Paint } from './style.js';
import { table } from './table.js';

export const CHECK_CONFIG_HELP = `Usage: dkim-proxy check-config [--config FILE] [--json]

Validates the configuration (every error at once, with file, line and key),
loads every private key, and prints the effective signing table.
Exit status: 0 when valid, 78 when not.

Options:
  -c, --config FILE   the configuration (default: ${DEFAULT_CONFIG})
      --json          print {valid, errors, warnings, ...the signing table} as JSON
`;

const canon = (s: Signer): string => `${s.canonicalization.header}/${s.canonicalization.body}`;

export function describeConfig(config: ProxyConfig, p: Paint = paint()): string {
  let out = '';
  const l = (name: string, x: ListenerConfig | undefined): string =>
    x ? `${name}: ${x.listen.host}:${x.listen.port} -> ${x.relay.host}:${x.relay.port} (${x.protocol}; clients ${x.allowClients.join(', ')})\n` : `${name}: off\n`;
  out += l('out', config.out) + l('in', config.in);
  if (config.in) out += `in: authserv-id ${config.in.authservId}\n`;
  out += `dns: ${config.dns.servers.length ? config.dns.servers.join(', ') : 'system resolvers'}, timeout ${config.dns.timeoutMs} ms\n\n`;
  const rows: string[][] = [['author domain', 'd=', 's=', 'algorithm', 'canon', 'policy', 'key', 'also'].map(p.bold)];
  for (const b of config.signing.domains.values()) {
    rows.push([b.subdomains ? `${b.name} (+subdomains)` : b.name, b.signer.domain, selectorsText(b), b.signer.algorithm, canon(b.signer), b.policy, keysText(b), b.additionalSignatures.join(',') || '-']);
  }
  rows.push(['(any other)', '-', '-', '-', '-', config.signing.unsigned === 'relay' ? 'relay unsigned' : 'refuse', '-', config.signing.defaultAdditional.join(',') || '-']);
  out += table(rows);
  if (config.signing.signatures.size > 0) {
    out += '\n';
    const sigRows: string[][] = [['signature', 'd=', 's=', 'algorithm', 'canon', 'policy', 'key'].map(p.bold)];
    for (const s of config.signing.signatures.values()) sigRows.push([s.name, s.signer.domain, selectorsText(s), s.signer.algorithm, canon(s.signer), s.policy, keysText(s)]);
    out += table(sigRows);
  }
  if (config.signing.singleSignature) out += '\nsingle_signature: only the first signature of each plan is added\n';
  return out;
}

/** A rotation's selectors in order of preference (`s2026b > s2026a`: the first published one signs). */
const selectorsText = (b: { readonly candidates: readonly Signer[] }): string => b.candidates.map((c) => c.selector).join(' > ');
const keysText = (b: { readonly candidates: readonly Signer[] }): string => b.candidates.map((c) => c.keySource).join(', ');
const signerJson = (s: Signer): Record<string, unknown> => ({ domain: s.domain, selector: s.selector, algorithm: s.algorithm, canonicalization: canon(s), key: s.keySource });
const blockJson = (b: { readonly signer: Signer; readonly candidates: readonly Signer[] }): Record<string, unknown> => ({
  ...signerJson(b.signer),
  ...(b.candidates.length > 1 ? { selectors: b.candidates.map((c) => c.selector), keys: b.candidates.map((c) => c.keySource) } : {}),
});
const listenerJson = (l: ListenerConfig | undefined): Record<string, unknown> | null =>
  l ? { listen: `${l.listen.host}:${l.listen.port}`, relay: `${l.relay.host}:${l.relay.port}`, protocol: l.protocol, allowClients: l.allowClients } : null;

/** The effective configuration as data, for scripts (no key material: key sources are paths or vault names). */
export function configJson(config: ProxyConfig): Record<string, unknown> {
  return {
    out: listenerJson(config.out),
    in: config.in ? { ...listenerJson(config.in), authservId: config.in.authservId } : null,
    dns: { servers: config.dns.servers, timeoutMs: config.dns.timeoutMs },
    metrics: config.metrics.listen ? `${config.metrics.listen.host}:${config.metrics.listen.port}` : null,
    workers: config.workers,
    domains: [...config.signing.domains.values()].map((b) => ({ name: b.name, subdomains: b.subdomains, policy: b.policy, ...blockJson(b), also: b.additionalSignatures })),
    signatures: [...config.signing.signatures.values()].map((s) => ({ name: s.name, policy: s.policy, ...blockJson(s) })),
    unsigned: config.signing.unsigned,
  };
}

export async function checkConfigCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string', short: 'c', default: DEFAULT_CONFIG }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    process.stdout.write(CHECK_CONFIG_HELP);
    return EXIT.ok;
  }
  if (values.json) {
    const r = await loadConfig(values.config);
    const issues = (list: typeof r.warnings) => list.map((i) => ({ file: values.config, line: i.line ?? null, key: i.key, message: i.message }));
    const body = r.ok ? { file: values.config, valid: true, errors: [], warnings: issues(r.warnings), ...configJson(r.config) } : { file: values.config, valid: false, errors: issues(r.issues), warnings: issues(r.warnings) };
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return r.ok ? EXIT.ok : EXIT.config;
  }
  const config = await loadOrFail(values.config);
  const p = paint();
  process.stdout.write(`${values.config}: ${p.good('OK')}\n${describeConfig(config, p)}`);
  return EXIT.ok;
}
