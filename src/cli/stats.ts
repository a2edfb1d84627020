import { parseArgs } from 'node:util';
import { parseExposition, total, type Sample } from '../ops/scrape.js';
import { DEFAULT_CONFIG } from './config.js';
import { endpointUrl, fetchEndpoint } from './endpoint.js';
import { CliError, EXIT } from './output.js';
import { paint, type Paint } from './style.js';
import { table } from './table.js';

export const STATS_HELP = `Usage: dkim-proxy stats [--config FILE | --url URL] [--json]

Reads the running proxy's metrics endpoint ([metrics] listen) and prints what
it has done since it started: messages signed by domain, signatures made,
verification results by domain, replies to clients and from the next hop,
latency, DNS cache hits and reloads. Counts are summed over all workers.
Exit status: 0, 75 when the endpoint cannot be reached, 65 when what answers
is not Prometheus text, 78 for a bad config.

Options:
  -c, --config FILE   the configuration whose [metrics] listen to read (default: ${DEFAULT_CONFIG})
      --url URL       read this endpoint instead (e.g. http://127.0.0.1:9090/metrics)
      --json          print the figures as JSON, for scripts
`;

interface Count {
  readonly [label: string]: string | number;
}

export interface Stats {
  readonly url: string;
  readonly workers: number;
  readonly inFlight: { readonly out: number; readonly in: number };
  readonly signing: readonly Count[];
  readonly signatures: readonly Count[];
  readonly verifications: readonly Count[];
  /** In: SPF results, one per message checked. */
  readonly spf: readonly Count[];
  /** In: DMARC results by policy and disposition, one per message checked. */
  readonly dmarc: readonly Count[];
  /** ARC chain results (in), and the sets added, by cv. */
  readonly arc: readonly Count[];
  readonly arcSeals: readonly Count[];
  readonly messages: readonly Count[];
  readonly relay: readonly Count[];
  readonly latency: Readonly<Record<string, { count: number; meanMs: number }>>;
  readonly dnsCache: { readonly hit: number; readonly miss: number };
  readonly reloads: { readonly ok: number; readonly refused: number };
}

/** The samples named `name`, as rows of their labels and value (label sets summed), zero rows dropped. */
function rows(samples: readonly Sample[], name: string, labels: readonly string[]): Count[] {
  const sums = new Map<string, Record<string, string | number>>();
  for (const s of samples) {
    if (s.name !== name) continue;
    const key = labels.map((l) => s.labels[l] ?? '').join('\0');
    const row = sums.get(key) ?? Object.fromEntries([...labels.map((l) => [l, s.labels[l] ?? '']), ['count', 0]]);
    row['count'] = (row['count'] as number) + s.value;
    sums.set(key, row);
  }
  const label = (r: Count): string => labels.map((l) => r[l]).join('\0');
  // Largest first; ties in label order, so the output does not depend on the scrape's order.
  return [...sums.values()].filter((r) => (r['count'] as number) > 0).sort((a, b) => (b['count'] as number) - (a['count'] as number) || (label(a) < label(b) ? -1 : 1));
}

export function summarize(url: string, samples: readonly Sample[]): Stats {
  const latency: Record<string, { count: number; meanMs: number }> = {};
  for (const kind of ['out', 'in']) {
    const count = total(samples, 'dkim_proxy_transaction_seconds_count', { kind });
    if (count > 0) latency[kind] = { count, meanMs: Math.round((total(samples, 'dkim_proxy_transaction_seconds_sum', { kind }) / count) * 10_000) / 10 };
  }
  return {
    url,
    workers: total(samples, 'dkim_proxy_workers'),
    inFlight: { out: total(samples, 'dkim_proxy_transactions_in_flight', { kind: 'out' }), in: total(samples, 'dkim_proxy_transactions_in_flight', { kind: 'in' }) },
    signing: rows(samples, 'dkim_proxy_signing_total', ['domain', 'result']),
    signatures: rows(samples, 'dkim_proxy_signatures_total', ['domain', 'selector', 'algorithm']),
    verifications: rows(samples, 'dkim_proxy_verifications_total', ['domain', 'result']),
    spf: rows(samples, 'dkim_proxy_spf_results', ['result']),
    dmarc: rows(samples, 'dkim_proxy_dmarc_results', ['result', 'policy', 'disposition']),
    arc: rows(samples, 'dkim_proxy_arc_results', ['result']),
    arcSeals: rows(samples, 'dkim_proxy_arc_seals_total', ['cv']),
    messages: rows(samples, 'dkim_proxy_messages_total', ['kind', 'class']),
    relay: rows(samples, 'dkim_proxy_relay_replies_total', ['kind', 'class']),
    latency,
    dnsCache: { hit: total(samples, 'dkim_proxy_dns_cache_total', { result: 'hit' }), miss: total(samples, 'dkim_proxy_dns_cache_total', { result: 'miss' }) },
    reloads: { ok: total(samples, 'dkim_proxy_config_reloads_total', { result: 'ok' }), refused: total(samples, 'dkim_proxy_config_reloads_total', { result: 'refused' }) },
  };
}

/** A cross table: one row per `rowKey`, one column per value of `colKey` seen. */
function crossTable(data: readonly Count[], rowKey: string, colKey: string, colOrder: readonly string[], p: Paint): string {
  const cols = colOrder.filter((c) => data.some((d) => d[colKey] === c));
  for (const d of data) if (!cols.includes(String(d[colKey]))) cols.push(String(d[colKey]));
  const byRow = new Map<string, Map<string, number>>();
  for (const d of data) {
    const r = byRow.get(String(d[rowKey])) ?? new Map<string, number>();
    r.set(String(d[colKey]), (r.get(String(d[colKey])) ?? 0) + Number(d['count']));
    byRow.set(String(d[rowKey]), r);
  }
  const out: string[][] = [[rowKey, ...cols.map((c) => p.status(c))]];
  for (const [row, values] of byRow) out.push([row, ...cols.map((c) => String(values.get(c) ?? 0))]);
  return table(out, ['l', ...cols.map(() => 'r' as const)]);
}

export function formatStats(s: Stats, p = paint()): string {
  const parts: string[] = [];
  const flight = `${s.inFlight.out + s.inFlight.in} transaction${s.inFlight.out + s.inFlight.in === 1 ? '' : 's'} in flight`;
  parts.push(`${p.bold('dkim-proxy')} at ${s.url}: ${s.workers} worker${s.workers === 1 ? '' : 's'}, ${flight}\n`);
  const section = (title: string, body: string): void => void parts.push(`${p.bold(title)}\n${body}`);
  section('Signing (out), messages', s.signing.length ? crossTable(s.signing, 'domain', 'result', ['signed', 'unsigned', 'refused', 'tempfail'], p) : p.dim('nothing yet\n'));
  if (s.signatures.length) section('Signatures made', table([['domain', 'selector', 'algorithm', 'count'], ...s.signatures.map((r) => [String(r['domain']), String(r['selector']), String(r['algorithm']), String(r['count'])])], ['l', 'l', 'l', 'r']));
  section('Verification (in), signatures', s.verifications.length ? crossTable(s.verifications, 'domain', 'result', ['pass', 'fail', 'neutral', 'policy', 'temperror', 'permerror', 'none'], p) : p.dim('nothing yet\n'));
  if (s.spf.length) section('SPF (in), messages', table([['result', 'count'], ...s.spf.map((r) => [p.status(String(r['result'])), String(r['count'])])], ['l', 'r']));
  if (s.arc.length) section('ARC (in), messages', table([['result', 'count'], ...s.arc.map((r) => [p.status(String(r['result'])), String(r['count'])])], ['l', 'r']));
  if (s.arcSeals.length) section('ARC sets added', table([['cv', 'count'], ...s.arcSeals.map((r) => [String(r['cv']), String(r['count'])])], ['l', 'r']));
  if (s.dmarc.length) section('DMARC (in), messages', table([['result', 'policy', 'disposition', 'count'], ...s.dmarc.map((r) => [p.status(String(r['result'])), String(r['policy']), String(r['disposition']), String(r['count'])])], ['l', 'l', 'l', 'r']));
  const kinds = ['out', 'in'];
  const classes = ['2xx', '4xx', '5xx', 'unreachable', 'failed'];
  const count = (data: readonly Count[], kind: string, cls: string): string => String(data.filter((d) => d['kind'] === kind && d['class'] === cls).reduce((a, d) => a + Number(d['count']), 0));
  const traffic: string[][] = [['', ...kinds]];
  for (const cls of classes.slice(0, 3)) traffic.push([`to clients ${cls}`, ...kinds.map((k) => count(s.messages, k, cls))]);
  for (const cls of classes) traffic.push([`from next hop ${cls}`, ...kinds.map((k) => count(s.relay, k, cls))]);
  traffic.push(['mean time per message', ...kinds.map((k) => (s.latency[k] ? `${s.latency[k]!.meanMs} ms` : '-'))]);
  section('Transactions', table(traffic, ['l', 'r', 'r']));
  const lookups = s.dnsCache.hit + s.dnsCache.miss;
  parts.push(
    `DNS key cache: ${s.dnsCache.hit} hits, ${s.dnsCache.miss} misses${lookups ? ` (${Math.round((100 * s.dnsCache.hit) / lookups)}% hits)` : ''}\n` +
      `Reloads: ${s.reloads.ok} ok, ${s.reloads.refused ? p.bad(`${s.reloads.refused} refused`) : '0 refused'}\n`,
  );
  return parts.join('\n');
}

export async function statsCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c', default: DEFAULT_CONFIG },
      url: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(STATS_HELP);
    return EXIT.ok;
  }
  const url = await endpointUrl(values.config, values.url, '/metrics');
  const { status, text } = await fetchEndpoint(url);
  if (status !== 200) throw new CliError(`cannot read ${url}: HTTP ${status}`, EXIT.tempFail);
  let samples: Sample[];
  try {
    samples = parseExposition(text);
  } catch (err) {
    throw new CliError(`${url} is not a Prometheus metrics endpoint: ${(err as Error).message}`, EXIT.dataError);
  }
  const stats = summarize(url, samples);
  process.stdout.write(values.json ? `${JSON.stringify(stats, null, 2)}\n` : formatStats(stats));
  return EXIT.ok;
}
