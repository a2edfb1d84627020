/** The [metrics] endpoint (/metrics, /healthz, /readyz) of whichever process serves it. */
import type { Logger } from 'pino';
import { CliError, EXIT } from '../cli/output.js';
import type { LiveConfig } from '../config/live.js';
import { readiness } from '../ops/health.js';
import { startOpsServer, type OpsServer } from '../ops/http.js';
import type { ListenerKind } from './messages.js';

export async function startOps(live: LiveConfig, log: Logger, metrics: () => Promise<string>, listening: (kind: ListenerKind) => boolean): Promise<OpsServer | undefined> {
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
