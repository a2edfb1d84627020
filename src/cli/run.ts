import cluster, { type Worker } from 'node:cluster';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { LiveConfig } from '../config/live.js';
import type { HostPort, ProxyConfig } from '../config/types.js';
import { cachedLookup } from '../dns/cache.js';
import { createKeyLookup, type KeyLookup } from '../dns/resolver.js';
import { readiness } from '../ops/health.js';
import { startOpsServer, type OpsServer } from '../ops/http.js';
import { createLogger, type LogFormat } from '../ops/log.js';
import { AggregatorRegistry, createProcessMetrics, createProxyMetrics, exposition, NO_METRICS, Registry, serveToPrimary, type ProcessMetrics, type PrometheusContentType, type ProxyMetrics } from '../ops/metrics.js';
import { createProxy, type ProxyServer } from '../smtp/proxy.js';
import { DEFAULT_CONFIG, formatIssue } from './config.js';
import { CliError, EXIT } from './output.js';

export const RUN_HELP = `Usage: dkim-proxy run [--config FILE] [--log-level LEVEL] [--log-format FORMAT]

Starts the listeners configured in [out] (sign and relay) and [in] (verify
and relay), in \`workers\` processes that share them (default: one per core),
and the metrics and health endpoint on [metrics] listen (/metrics, /healthz,
/readyz). Logs are JSON lines on stdout; readable lines on a terminal.

Signals: SIGTERM or SIGINT stop accepting, finish the transactions in flight
(up to 30 s), and exit 0. SIGHUP reloads the configuration and keys; a bad
new configuration is refused with a log line and the old one stays in force.
A worker that dies is replaced.

Exit status: 0 after SIGTERM/SIGINT; 78 for a bad configuration; 75 when a
listener cannot be bound (the address in use, say); 1 when workers keep dying.

Options:
  -c, --config FILE        the configuration (default: ${DEFAULT_CONFIG})
      --log-level LEVEL    trace, debug, info, warn, error (default: [log] level)
      --log-format FORMAT  json, pretty, or auto: pretty on a terminal (default: [log] format)
`;

function lookupFor(config: ProxyConfig, metrics: ProxyMetrics): KeyLookup {
  return cachedLookup(createKeyLookup({ servers: config.dns.servers, timeoutMs: config.dns.timeoutMs }), {
    ttlSeconds: config.dns.cacheTtlSeconds,
    negativeTtlSeconds: config.dns.negativeTtlSeconds,
    maxEntries: config.dns.cacheEntries,
    observe: (event) => metrics.dnsCache(event),
  });
}

const moved = (a: HostPort | undefined, b: HostPort | undefined): boolean => a?.host !== b?.host || a?.port !== b?.port;

const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'pretty'];
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

/** A worker tells the primary which listeners it has up, for /readyz. */
interface ListeningMessage {
  readonly type: 'dkim-proxy:listening';
  readonly kind: 'out' | 'in';
}
const isListeningMessage = (m: unknown): m is ListeningMessage => typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'dkim-proxy:listening';

async function startOps(live: LiveConfig, log: Logger, metrics: () => Promise<string>, listening: (kind: 'out' | 'in') => boolean): Promise<OpsServer | undefined> {
  const at = live.config.metrics.listen;
  if (!at) return undefined;
  try {
    const ops = await startOpsServer(at, { metrics, readiness: () => readiness(live.config, listening) }, log);
    log.info({ listen: `${ops.address.host}:${ops.address.port}` }, 'metrics and health endpoint listening');
    return ops;
  } catch (err) {
    throw new CliError(`cannot listen on ${at.host}:${at.port} for [metrics]: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, EXIT.tempFail);
  }
}

export async function runCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c', default: DEFAULT_CONFIG },
      'log-level': { type: 'string' },
      'log-format': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(RUN_HELP);
    return EXIT.ok;
  }
  const opened = await LiveConfig.open(values.config);
  for (const w of opened.warnings) process.stderr.write(`${formatIssue(values.config, w, 'warning')}\n`);
  if (!opened.ok) {
    throw new CliError(`${opened.issues.map((i) => formatIssue(values.config, i)).join('\n')}\n${values.config}: not started`, EXIT.config);
  }
  const live = opened.live;
  const format = values['log-format'] ?? live.config.log.format;
  if (!(LOG_FORMATS as readonly string[]).includes(format)) throw new CliError(`--log-format: expected one of ${LOG_FORMATS.join(', ')}, got "${format}"`, EXIT.usage);
  const level = values['log-level'] ?? live.config.log.level;
  if (!LOG_LEVELS.includes(level)) throw new CliError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${level}"`, EXIT.usage);
  const log = createLogger(level, undefined, format as LogFormat);
  if (cluster.isPrimary && live.config.workers > 1) return runPrimary(live, log, values.config);

  // One registry per process; a worker's is summed by the primary, which serves it.
  const registry = new Registry();
  // Workers read the same file as the primary, so they count exactly when it serves.
  const metrics = live.config.metrics.listen ? createProxyMetrics(registry) : NO_METRICS;
  if (cluster.isWorker && live.config.metrics.listen) serveToPrimary(registry);
  const processMetrics: ProcessMetrics | undefined = cluster.isWorker ? undefined : createProcessMetrics(registry);
  processMetrics?.workers(1);
  let lookup = lookupFor(live.config, metrics);
  const deps = { config: () => live.config, lookup: (name: string) => lookup(name), log, metrics };

  const proxies: ProxyServer[] = [];
  const listening = new Set<'out' | 'in'>();
  for (const kind of ['out', 'in'] as const) if (live.config[kind]) proxies.push(createProxy(kind, deps));
  if (proxies.length === 0) throw new CliError(`${values.config}: neither [out] nor [in] is configured: nothing to run`, EXIT.config);
  for (const p of proxies) {
    const l = live.config[p.kind]!;
    try {
      const at = await p.listen();
      log.info({ kind: p.kind, listen: `${at.host}:${at.port}`, relay: `${l.relay.host}:${l.relay.port}`, protocol: l.protocol }, 'listening');
      listening.add(p.kind);
      if (cluster.isWorker) process.send?.({ type: 'dkim-proxy:listening', kind: p.kind } satisfies ListeningMessage);
    } catch (err) {
      for (const q of proxies) await q.close().catch(() => undefined);
      throw new CliError(`cannot listen on ${l.listen.host}:${l.listen.port} for [${p.kind}]: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, EXIT.tempFail);
    }
  }
  let ops: OpsServer | undefined;
  if (!cluster.isWorker) {
    try {
      ops = await startOps(live, log, () => exposition(registry, undefined), (kind) => listening.has(kind));
    } catch (err) {
      for (const q of proxies) await q.close().catch(() => undefined);
      throw err;
    }
  }

  live.onChange((config) => {
    lookup = lookupFor(config, metrics);
  });
  process.on('SIGHUP', () => {
    const before = live.config;
    void live.reload().then((r) => {
      if (!r.ok) {
        processMetrics?.reload('refused');
        log.error({ file: values.config, errors: r.issues.map((i) => formatIssue(values.config, i)) }, 'reload refused: the configuration in force is unchanged');
        return;
      }
      processMetrics?.reload('ok');
      // Sockets stay where they were bound.
      for (const kind of ['out', 'in'] as const) {
        if (moved(before[kind]?.listen, r.config[kind]?.listen)) log.warn({ kind }, 'listen address changed: restart dkim-proxy for it to take effect');
      }
      if (moved(before.metrics.listen, r.config.metrics.listen)) log.warn('[metrics] listen changed: restart dkim-proxy for it to take effect');
      log.info({ file: values.config, domains: r.config.signing.domains.size }, 'configuration and keys reloaded');
    });
  });

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
  // A worker's channel to the primary would keep it alive once drained.
  if (cluster.isWorker) cluster.worker?.disconnect();
  return EXIT.ok;
}

/**
 * The primary of a multi-process proxy: forks the workers (which run the
 * listeners; node:cluster shares the sockets), replaces one that dies, checks
 * a new config itself before passing SIGHUP on, and drains on SIGTERM.
 */
async function runPrimary(live: LiveConfig, log: Logger, file: string): Promise<number> {
  const wanted = live.config.workers;
  let stopping = false;
  const deaths: number[] = [];
  // Our own count: node:cluster still lists a worker when its 'exit' fires.
  const alive = new Set<Worker>();
  const registry = new Registry();
  const processMetrics = createProcessMetrics(registry);
  const aggregator = new AggregatorRegistry<PrometheusContentType>();
  const listening = new Map<Worker, Set<'out' | 'in'>>();
  const kinds = (['out', 'in'] as const).filter((kind) => live.config[kind]);
  // Some worker has listened on every listener: the sockets are bound, and a worker that dies later is replaced.
  let started = false;
  const fork = (): Worker => {
    const w = cluster.fork();
    alive.add(w);
    processMetrics.workers(alive.size);
    w.on('message', (m: unknown) => {
      if (!isListeningMessage(m)) return;
      const up = new Set([...(listening.get(w) ?? []), m.kind]);
      listening.set(w, up);
      if (kinds.every((kind) => up.has(kind))) started = true;
    });
    return w;
  };
  for (let k = 0; k < wanted; k++) fork();
  log.info({ workers: wanted }, 'started workers');
  const ops = await startOps(live, log, () => exposition(registry, aggregator), (kind) => [...listening.values()].some((kinds) => kinds.has(kind))).catch((err: unknown) => {
    for (const w of alive) w.process.kill('SIGTERM');
    throw err;
  });

  return new Promise<number>((resolve) => {
    // Not 0 once the workers are being stopped because of a fault.
    let exitCode: number = EXIT.ok;
    const finish = (code: number): void => {
      void (ops?.close() ?? Promise.resolve()).then(() => log.flush(() => resolve(code)));
    };
    cluster.on('exit', (worker, code, signal) => {
      alive.delete(worker);
      listening.delete(worker);
      processMetrics.workers(alive.size);
      if (stopping) {
        log.info({ worker: worker.process.pid, code, signal }, 'worker stopped');
        if (alive.size === 0) {
          log.info('stopped');
          finish(exitCode);
        }
        return;
      }
      if (!started) {
        // It could not bind a listener (or start at all), and neither will a
        // new one: stop with its reason (on stderr) and exit code, rather than
        // run on listening nowhere.
        log.fatal({ pid: worker.process.pid, code, signal }, 'a worker could not start: stopping');
        stopping = true;
        for (const w of alive) w.process.kill('SIGTERM');
        exitCode = code !== null && code !== 0 ? code : EXIT.software;
        if (alive.size === 0) finish(exitCode);
        return;
      }
      const now = Date.now();
      deaths.push(now);
      while (deaths.length > 0 && deaths[0]! < now - 10_000) deaths.shift();
      // A worker that cannot stay up (five deaths in ten seconds) is a fault to fix, not to hide.
      if (deaths.length >= 5) {
        log.fatal({ pid: worker.process.pid, code, signal }, 'workers keep dying: stopping');
        stopping = true;
        exitCode = 1;
        for (const w of alive) w.process.kill('SIGTERM');
        if (alive.size === 0) finish(exitCode);
        return;
      }
      log.error({ pid: worker.process.pid, code, signal }, 'worker died: starting a new one');
      fork();
    });
    process.on('SIGHUP', () => {
      void live.reload().then((r) => {
        if (!r.ok) {
          processMetrics.reload('refused');
          log.error({ file, errors: r.issues.map((i) => formatIssue(file, i)) }, 'reload refused: the configuration in force is unchanged');
          return;
        }
        processMetrics.reload('ok');
        for (const w of alive) w.process.kill('SIGHUP');
        log.info({ file, workers: alive.size }, 'reload passed on to the workers');
      });
    });
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping: workers finish their transactions in flight');
      if (alive.size === 0) finish(0);
      for (const w of alive) w.process.kill('SIGTERM');
      // Bounded: the workers' own grace is 30 s.
      setTimeout(() => {
        for (const w of alive) w.process.kill('SIGKILL');
      }, 35_000).unref();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
