/**
 * The supervisor of a multi-process proxy: forks the workers (which run the
 * listeners; node:cluster shares the sockets), hands each the configuration
 * and keys it loaded itself, replaces a worker that dies, reloads on SIGHUP
 * (once, here: the workers get the result) and drains on SIGTERM.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { formatIssue } from '../cli/config.js';
import { EXIT } from '../cli/output.js';
import { keyMaterialOf } from '../config/load.js';
import type { LiveConfig } from '../config/live.js';
import type { ProxyConfig } from '../config/types.js';
import { AggregatorRegistry, createProcessMetrics, exposition, Registry, type PrometheusContentType } from '../ops/metrics.js';
import { configMessage, isConfigRequest, isListeningMessage, type ConfigMessage, type ListenerKind } from './messages.js';
import { startOps } from './ops.js';

function messageOf(config: ProxyConfig): ConfigMessage {
  const signers = [...config.signing.domains.values(), ...config.signing.signatures.values()].flatMap((b) => b.candidates);
  return configMessage(config.text, keyMaterialOf([...signers, ...(config.arc ? [config.arc] : [])]));
}

export async function runSupervisor(live: LiveConfig, log: Logger, file: string): Promise<number> {
  const wanted = live.config.workers;
  let stopping = false;
  const deaths: number[] = [];
  // Our own count: node:cluster still lists a worker when its 'exit' fires.
  const alive = new Set<Worker>();
  const registry = new Registry();
  const processMetrics = createProcessMetrics(registry);
  const aggregator = new AggregatorRegistry<PrometheusContentType>();
  const listening = new Map<Worker, Set<ListenerKind>>();
  const kinds = (['out', 'in'] as const).filter((kind) => live.config[kind]);
  // Some worker has listened on every listener: the sockets are bound, and a worker that dies later is replaced.
  let started = false;
  let current = messageOf(live.config);
  const fork = (): Worker => {
    const w = cluster.fork();
    alive.add(w);
    processMetrics.workers(alive.size);
    w.on('message', (m: unknown) => {
      if (isConfigRequest(m)) w.send(current);
      if (!isListeningMessage(m)) return;
      const up = new Set([...(listening.get(w) ?? []), m.kind]);
      listening.set(w, up);
      if (kinds.every((kind) => up.has(kind))) started = true;
    });
    return w;
  };
  for (let k = 0; k < wanted; k++) fork();
  log.info({ workers: wanted }, 'started workers');
  const ops = await startOps(live, log, () => exposition(registry, aggregator), (kind) => [...listening.values()].some((up) => up.has(kind))).catch((err: unknown) => {
    for (const w of alive) w.process.kill('SIGTERM');
    throw err;
  });

  return new Promise<number>((resolve) => {
    let exitCode: number = EXIT.ok;
    const finish = (): void => {
      void (ops?.close() ?? Promise.resolve()).then(() => log.flush(() => resolve(exitCode)));
    };
    /** The one way the workers are stopped: for a signal, a crash loop, or a worker that could not start. */
    const stopWorkers = (code: number): void => {
      if (stopping) return;
      stopping = true;
      exitCode = code;
      if (alive.size === 0) {
        finish();
        return;
      }
      for (const w of alive) w.process.kill('SIGTERM');
      // Bounded: the workers' own grace is 30 s.
      setTimeout(() => {
        for (const w of alive) w.process.kill('SIGKILL');
      }, 35_000).unref();
    };

    cluster.on('exit', (worker, code, signal) => {
      alive.delete(worker);
      listening.delete(worker);
      processMetrics.workers(alive.size);
      if (stopping) {
        log.info({ worker: worker.process.pid, code, signal }, 'worker stopped');
        if (alive.size === 0) {
          log.info('stopped');
          finish();
        }
        return;
      }
      if (!started) {
        // It could not bind a listener (or start at all), and neither will a
        // new one: stop with its reason (on stderr) and exit code, rather than
        // run on listening nowhere.
        log.fatal({ pid: worker.process.pid, code, signal }, 'a worker could not start: stopping');
        stopWorkers(code !== null && code !== 0 ? code : EXIT.software);
        return;
      }
      const now = Date.now();
      deaths.push(now);
      while (deaths.length > 0 && deaths[0]! < now - 10_000) deaths.shift();
      // A worker that cannot stay up (five deaths in ten seconds) is a fault to fix, not to hide.
      if (deaths.length >= 5) {
        log.fatal({ pid: worker.process.pid, code, signal }, 'workers keep dying: stopping');
        stopWorkers(1);
        return;
      }
      log.error({ pid: worker.process.pid, code, signal }, 'worker died: starting a new one');
      fork();
    });

    process.on('SIGHUP', () => {
      // Config and keys are loaded here, once; each worker builds its config from what it is sent.
      void live.reload().then((r) => {
        if (!r.ok) {
          processMetrics.reload('refused');
          log.error({ file, errors: r.issues.map((i) => formatIssue(file, i)) }, 'reload refused: the configuration in force is unchanged');
          return;
        }
        processMetrics.reload('ok');
        current = messageOf(r.config);
        for (const w of alive) w.send(current);
        log.info({ file, workers: alive.size }, 'reload passed on to the workers');
      });
    });
    const stop = (signal: string): void => {
      if (stopping) return;
      log.info({ signal }, 'stopping: workers finish their transactions in flight');
      stopWorkers(EXIT.ok);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
