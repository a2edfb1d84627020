/**
 * Prometheus metrics. Each process keeps its own registry; with workers, the
 * primary asks them for theirs over the cluster channel and serves the sum
 * (prom-client's AggregatorRegistry), followed by its own (config reloads,
 * workers alive).
 */
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type PrometheusContentType } from 'prom-client';
import type { DkimOutcome } from '../dkim/index.js';
import { causeOf } from '../dkim/cause.js';

export type Kind = 'out' | 'in';

/** What the proxies report; `NO_METRICS` when nothing is collected (tests, one-shot commands). */
export interface ProxyMetrics {
  clientRefused(kind: Kind): void;
  inFlight(kind: Kind, delta: 1 | -1): void;
  /** Out: one message's signing decision; `domain` is the signing domain (or the author's when unsigned). */
  signing(domain: string | null, result: 'signed' | 'unsigned' | 'refused' | 'tempfail', signatures: readonly { domain: string; selector: string; algorithm: string }[]): void;
  /** In: one result per signature, or `none` for an unsigned message. */
  verified(outcomes: readonly DkimOutcome[]): void;
  /** In: one SPF result per message checked. */
  spf(result: string): void;
  /** In: one DMARC result per message checked, with the policy that applied and what was done. */
  dmarc(result: string, policy: string, disposition: string): void;
  /** In: one ARC chain result per message checked. */
  arc(result: string): void;
  /** A new ARC set (by its cv=), or `refused` when the chain could not take one. */
  arcSeal(cv: string): void;
  /** Out: a signature that failed its self-check, so the message was deferred. */
  selfCheckFailed(domain: string): void;
  /** Out, `transport_encoding = "7bit"`: one part re-encoded or relabelled, by its new encoding and why. */
  reencoded(to: string, why: string): void;
  /** A next-hop reply to DATA (per recipient with LMTP), or a next hop that could not be reached or failed. */
  relay(kind: Kind, reply: number | 'unreachable' | 'failed'): void;
  /** The client's final answer to DATA and what the transaction cost. */
  transaction(kind: Kind, code: number, bytes: number, seconds: number): void;
  dnsCache(event: 'hit' | 'miss'): void;
  /** SPF and DMARC lookups (in), from their own cache. */
  policyDnsCache(event: 'hit' | 'miss'): void;
  /** The keys of the configuration in force, for dkim_key_age_seconds (called at start and on each reload). */
  signingKeys(keys: readonly SigningKeyAge[]): void;
}

export interface SigningKeyAge {
  readonly domain: string;
  readonly selector: string;
  /** ms since the epoch; undefined when the key's source does not say. */
  readonly createdAt: number | undefined;
}

export const NO_METRICS: ProxyMetrics = {
  clientRefused() {},
  inFlight() {},
  signing() {},
  verified() {},
  spf() {},
  dmarc() {},
  arc() {},
  arcSeal() {},
  selfCheckFailed() {},
  reencoded() {},
  relay() {},
  transaction() {},
  dnsCache() {},
  policyDnsCache() {},
  signingKeys() {},
};

/**
 * Label values taken from mail (signing domains of incoming messages, author
 * domains) are unbounded: an attacker could mint one time series per message.
 * The first `limit` distinct values get their own series, the rest `_other`.
 */
export class BoundedLabel {
  private readonly seen = new Set<string>();
  private readonly limit: number;
  constructor(limit: number) {
    this.limit = limit;
  }
  value(v: string | null | undefined): string {
    if (!v) return 'none';
    const lower = v.toLowerCase();
    if (this.seen.has(lower)) return lower;
    if (this.seen.size >= this.limit) return '_other';
    this.seen.add(lower);
    return lower;
  }
}

const replyClass = (code: number): string => `${Math.floor(code / 100)}xx`;

export const DOMAIN_LABEL_LIMIT = 500;

/** The proxies' metrics in `registry` (default metrics of the process too). */
export function createProxyMetrics(registry: Registry): ProxyMetrics {
  collectDefaultMetrics({ register: registry });
  const refused = new Counter({ name: 'dkim_proxy_clients_refused_total', help: 'Connections refused because the client is not in allow_clients', labelNames: ['kind'], registers: [registry] });
  const inFlight = new Gauge({ name: 'dkim_proxy_transactions_in_flight', help: 'DATA transactions being received, signed or verified, or relayed', labelNames: ['kind'], registers: [registry] });
  const signing = new Counter({ name: 'dkim_proxy_signing_total', help: 'Messages through out, by signing domain (author domain when unsigned) and decision', labelNames: ['domain', 'result'], registers: [registry] });
  const signatures = new Counter({ name: 'dkim_proxy_signatures_total', help: 'DKIM signatures made, by d=, s= and a=', labelNames: ['domain', 'selector', 'algorithm'], registers: [registry] });
  const failures = new Counter({ name: 'dkim_proxy_dkim_failures_total', help: 'DKIM signatures from in that did not pass, by cause (the word dkim-proxy explain gives)', labelNames: ['cause'], registers: [registry] });
  const verified = new Counter({ name: 'dkim_proxy_verifications_total', help: 'DKIM results from in, one per signature (none: unsigned message), by d= and result', labelNames: ['domain', 'result'], registers: [registry] });
  // Named as the issue that asked for them spells them (dmarc_results, spf_results), under our prefix.
  const spf = new Counter({ name: 'dkim_proxy_spf_results', help: 'SPF results from in, one per message checked', labelNames: ['result'], registers: [registry] });
  const reencodedParts = new Counter({ name: 'dkim_proxy_parts_reencoded_total', help: 'MIME parts [out] transport_encoding = "7bit" re-encoded or relabelled before signing, by new encoding and why', labelNames: ['to', 'why'], registers: [registry] });
  const selfChecks = new Counter({ name: 'dkim_proxy_self_check_failures_total', help: 'Signatures that failed their self-check ([signing] self_check): the message was deferred, not sent', labelNames: ['domain'], registers: [registry] });
  const arc = new Counter({ name: 'dkim_proxy_arc_results', help: 'ARC chain results from in, one per message checked', labelNames: ['result'], registers: [registry] });
  const arcSeals = new Counter({ name: 'dkim_proxy_arc_seals_total', help: 'ARC sets added, by their cv= (refused: the chain could not take one)', labelNames: ['cv'], registers: [registry] });
  const dmarc = new Counter({ name: 'dkim_proxy_dmarc_results', help: 'DMARC results from in, one per message checked, by the policy for the From domain and the disposition (after pct)', labelNames: ['result', 'policy', 'disposition'], registers: [registry] });
  const relay = new Counter({ name: 'dkim_proxy_relay_replies_total', help: 'Next-hop replies to DATA by class; unreachable and failed when there was none', labelNames: ['kind', 'class'], registers: [registry] });
  const messages = new Counter({ name: 'dkim_proxy_messages_total', help: 'DATA transactions by the reply the client got (2xx relayed, 4xx try later, 5xx refused)', labelNames: ['kind', 'class'], registers: [registry] });
  const seconds = new Histogram({
    name: 'dkim_proxy_transaction_seconds',
    help: 'From DATA to the reply the client got: receiving, signing or verifying, and relaying',
    labelNames: ['kind'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const bytes = new Histogram({
    name: 'dkim_proxy_message_bytes',
    help: 'Size of the messages received',
    labelNames: ['kind'],
    buckets: [1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864],
    registers: [registry],
  });
  const dns = new Counter({ name: 'dkim_proxy_dns_cache_total', help: 'Key lookups answered from the cache (hit) or sent to DNS (miss)', labelNames: ['result'], registers: [registry] });
  const policyDns = new Counter({ name: 'dkim_proxy_policy_dns_cache_total', help: 'SPF and DMARC lookups answered from the cache (hit) or sent to DNS (miss)', labelNames: ['result'], registers: [registry] });
  // Named as the key-rotation issue spells it. Every worker has the same keys: the primary keeps one value, not their sum.
  let keys: readonly SigningKeyAge[] = [];
  new Gauge({
    name: 'dkim_key_age_seconds',
    help: 'Age of each configured signing key (its file\'s mtime, or Vault\'s created_time), by d= and s=',
    labelNames: ['domain', 'selector'],
    registers: [registry],
    aggregator: 'max',
    collect() {
      this.reset();
      const now = Date.now();
      for (const k of keys) if (k.createdAt !== undefined) this.set({ domain: k.domain, selector: k.selector }, Math.max(0, Math.round((now - k.createdAt) / 1000)));
    },
  });
  // Pre-set the series a dashboard expects, so they read 0 rather than absent.
  for (const kind of ['out', 'in']) {
    inFlight.set({ kind }, 0);
    refused.inc({ kind }, 0);
  }
  for (const result of ['hit', 'miss']) {
    dns.inc({ result }, 0);
    policyDns.inc({ result }, 0);
  }

  const signingDomains = new BoundedLabel(DOMAIN_LABEL_LIMIT);
  const verifiedDomains = new BoundedLabel(DOMAIN_LABEL_LIMIT);
  return {
    clientRefused: (kind) => refused.inc({ kind }),
    inFlight: (kind, delta) => inFlight.inc({ kind }, delta),
    signing(domain, result, made) {
      signing.inc({ domain: signingDomains.value(domain), result });
      for (const s of made) signatures.inc({ domain: s.domain.toLowerCase(), selector: s.selector, algorithm: s.algorithm });
    },
    verified(outcomes) {
      if (outcomes.length === 0) verified.inc({ domain: 'none', result: 'none' });
      for (const o of outcomes) {
        verified.inc({ domain: verifiedDomains.value(o.sig.d), result: o.result });
        const cause = causeOf(o);
        if (cause !== 'ok') failures.inc({ cause });
      }
    },
    spf: (result) => spf.inc({ result }),
    dmarc: (result, policy, disposition) => dmarc.inc({ result, policy, disposition }),
    arc: (result) => arc.inc({ result }),
    arcSeal: (cv) => arcSeals.inc({ cv }),
    selfCheckFailed: (domain) => selfChecks.inc({ domain: signingDomains.value(domain) }),
    reencoded: (to, why) => reencodedParts.inc({ to, why }),
    relay: (kind, reply) => relay.inc({ kind, class: typeof reply === 'number' ? replyClass(reply) : reply }),
    transaction(kind, code, size, secs) {
      messages.inc({ kind, class: replyClass(code) });
      bytes.observe({ kind }, size);
      seconds.observe({ kind }, secs);
    },
    dnsCache: (event) => dns.inc({ result: event }),
    policyDnsCache: (event) => policyDns.inc({ result: event }),
    signingKeys(list) {
      keys = list;
    },
  };
}

/** The primary's (or a single process's) own series. */
export interface ProcessMetrics {
  reload(result: 'ok' | 'refused'): void;
  workers(n: number): void;
}

export function createProcessMetrics(registry: Registry): ProcessMetrics {
  const reloads = new Counter({ name: 'dkim_proxy_config_reloads_total', help: 'SIGHUP reloads of the configuration and keys: ok, or refused (the old one stays)', labelNames: ['result'], registers: [registry] });
  const workers = new Gauge({ name: 'dkim_proxy_workers', help: 'Worker processes alive', registers: [registry] });
  reloads.inc({ result: 'ok' }, 0);
  reloads.inc({ result: 'refused' }, 0);
  return {
    reload: (result) => reloads.inc({ result }),
    workers: (n) => workers.set(n),
  };
}

/** In a worker: answer the primary's requests for this registry. */
export function serveToPrimary(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // installs the worker's message listener
}

/** The exposition text: the workers' sum (if any) and then the local registry. */
export async function exposition(local: Registry, aggregator: AggregatorRegistry<PrometheusContentType> | undefined): Promise<string> {
  const parts: string[] = [];
  if (aggregator) parts.push(await aggregator.clusterMetrics());
  parts.push(await local.metrics());
  return parts.filter(Boolean).join('\n');
}

export { AggregatorRegistry, Registry, type PrometheusContentType };
