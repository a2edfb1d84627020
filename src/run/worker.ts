/**
 * A process that runs the listeners: the only process of a one-worker proxy
 * (it then also serves [metrics] and reloads on SIGHUP), or one of a
 * supervisor's workers (its reloads arrive from the supervisor, config and
 * keys already loaded there; it serves its metrics to the supervisor).
 */
import cluster from 'node:cluster';
import type { Logger } from 'pino';
import type { KeyMaterial } from '../config/load.js';
import type { LiveConfig } from '../config/live.js';
import type { HostPort, ProxyConfig } from '../config/types.js';
import { cachedLookup } from '../dns/cache.js';
import { delegatingWire, wireFor } from '../dns/wire-cache.js';
import { createKeyLookup, type KeyLookup } from '../dns/resolver.js';
import { createProcessMetrics, createProxyMetrics, exposition, NO_METRICS, Registry, serveToPrimary, type ProxyMetrics, type SigningKeyAge } from '../ops/metrics.js';
import { createProxy, type ProxyServer } from '../smtp/proxy.js';
import { CliError, EXIT } from '../cli/output.js';
import { formatIssue } from '../cli/config.js';
import { isConfigMessage, type ConfigRequest, type ListenerKind, type ListeningMessage } from './messages.js';
import { startOps } from './ops.js';

/** Every signing key of a config (every selector of each block, and the ARC sealer's), for dkim_key_age_seconds. */
export function signingKeyAges(config: ProxyConfig): SigningKeyAge[] {
  const signers = [...config.signing.domains.values(), ...config.signing.signatures.values()].flatMap((b) => b.candidates);
  const out = signers.map((s) => ({ domain: s.domain, selector: s.selector, createdAt: s.keyCreatedAt }));
  return config.arc ? [...out, { domain: config.arc.domain, selector: config.arc.selector, createdAt: config.arc.keyCreatedAt }] : out;
}

export function lookupFor(config: ProxyConfig, metrics: ProxyMetrics): KeyLookup {
  return cachedLookup(createKeyLookup({ servers: config.dns.servers, timeoutMs: config.dns.timeoutMs }), {
    ttlSeconds: config.dns.cacheTtlSeconds,
    negativeTtlSeconds: config.dns.negativeTtlSeconds,
    maxEntries: config.dns.cacheEntries,
    observe: (event) => metrics.dnsCache(event),
  });
}

const moved = (a: HostPort | undefined, b: HostPort | undefined): boolean => a?.host !== b?.host || a?.port !== b?.port;

export async function runWorker(live: LiveConfig, log: Logger, file: string): Promise<number> {
  const supervised = cluster.isWorker;
  // One registry per process; a worker's is summed by the supervisor, which serves it.
  const registry = new Registry();
  const metrics = live.config.metrics.listen ? createProxyMetrics(registry) : NO_METRICS;
  if (supervised && live.config.metrics.listen) serveToPrimary(registry);
  const processMetrics = supervised ? undefined : createProcessMetrics(registry);
  processMetrics?.workers(1);
  let lookup = lookupFor(live.config, metrics);
  let wire = wireFor(live.config.dns, (event) => metrics.policyDnsCache(event));
  metrics.signingKeys(signingKeyAges(live.config));
  live.onChange((config) => {
    lookup = lookupFor(config, metrics);
    wire = wireFor(config.dns, (event) => metrics.policyDnsCache(event));
    metrics.signingKeys(signingKeyAges(config));
  });
  const deps = { config: () => live.config, lookup: (name: string) => lookup(name), dns: delegatingWire(() => wire), log, metrics };

  const proxies: ProxyServer[] = [];
  const listening = new Set<ListenerKind>();
  for (const kind of ['out', 'in'] as const) if (live.config[kind]) proxies.push(createProxy(kind, deps));
  if (proxies.length === 0) throw new CliError(`${file}: neither [out] nor [in] is configured: nothing to run`, EXIT.config);
  const closeAll = async (): Promise<void> => {
    for (const q of proxies) await q.close().catch(() => undefined);
  };
  for (const p of proxies) {
    const l = live.config[p.kind]!;
    try {
      const at = await p.listen();
      log.info({ kind: p.kind, listen: `${at.host}:${at.port}`, relay: `${l.relay.host}:${l.relay.port}`, protocol: l.protocol }, 'listening');
      listening.add(p.kind);
      if (supervised) process.send?.({ type: 'dkim-proxy:listening', kind: p.kind } satisfies ListeningMessage);
    } catch (err) {
      await closeAll();
      throw new CliError(`cannot listen on ${l.listen.host}:${l.listen.port} for [${p.kind}]: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, EXIT.tempFail);
    }
  }
  const ops = supervised
    ? undefined
    : await startOps(live, log, () => exposition(registry, undefined), (kind) => listening.has(kind)).catch(async (err: unknown) => {
        await closeAll();
        throw err;
      });

  /** The one reload path: from the file (SIGHUP), or as the supervisor loaded it. */
  const reload = async (given?: { text: string; keys: KeyMaterial }): Promise<void> => {
    const before = live.config;
    const r = await live.reload(given);
    if (!r.ok) {
      processMetrics?.reload('refused');
      log.error({ file, errors: r.issues.map((i) => formatIssue(file, i)) }, 'reload refused: the configuration in force is unchanged');
      return;
    }
    processMetrics?.reload('ok');
    // Sockets stay where they were bound.
    for (const kind of ['out', 'in'] as const) {
      if (moved(before[kind]?.listen, r.config[kind]?.listen)) log.warn({ kind }, 'listen address changed: restart dkim-proxy for it to take effect');
    }
    if (moved(before.metrics.listen, r.config.metrics.listen)) log.warn('[metrics] listen changed: restart dkim-proxy for it to take effect');
    log.info({ file, domains: r.config.signing.domains.size }, 'configuration and keys reloaded');
  };
  if (supervised) {
    process.on('message', (m: unknown) => {
      if (isConfigMessage(m)) void reload({ text: m.text, keys: new Map(m.keys) });
    });
    // The supervisor reloads for all; a SIGHUP to the whole group must not end a worker.
    process.on('SIGHUP', () => {});
  } else {
    process.on('SIGHUP', () => void reload());
  }

  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'stopping: no new connections, finishing transactions in flight');
      void Promise.all([...proxies.map((p) => p.close()), ops?.close()]).then(() => {
        log.info('stopped');
        log.flush(() => resolve());
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  // A worker's channel to the supervisor would keep it alive once drained.
  if (supervised) cluster.worker?.disconnect();
  return EXIT.ok;
}

/** A supervised worker's first configuration, from the supervisor; bounded, so an orphan does not wait forever. */
export function firstConfig(timeoutMs = 30_000): Promise<{ text: string; keys: KeyMaterial }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new CliError(`no configuration from the supervisor within ${timeoutMs / 1000} s`, EXIT.software));
    }, timeoutMs);
    const onMessage = (m: unknown): void => {
      if (!isConfigMessage(m)) return;
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve({ text: m.text, keys: new Map(m.keys) });
    };
    process.on('message', onMessage);
    process.send?.({ type: 'dkim-proxy:config-request' } satisfies ConfigRequest);
  });
}
