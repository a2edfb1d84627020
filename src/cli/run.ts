import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { LiveConfig } from '../config/live.js';
import { createLogger, type LogFormat } from '../ops/log.js';
import { runSupervisor } from '../run/supervisor.js';
import { firstConfig, runWorker } from '../run/worker.js';
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

const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'pretty'];
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

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
  // A supervised worker builds its config from the supervisor's text and keys: they are read once, there.
  const given = cluster.isWorker ? await firstConfig() : undefined;
  const opened = await LiveConfig.open(values.config, {}, given);
  if (!cluster.isWorker) for (const w of opened.warnings) process.stderr.write(`${formatIssue(values.config, w, 'warning')}\n`);
  if (!opened.ok) {
    throw new CliError(`${opened.issues.map((i) => formatIssue(values.config, i)).join('\n')}\n${values.config}: not started`, EXIT.config);
  }
  const live = opened.live;
  const format = values['log-format'] ?? live.config.log.format;
  if (!(LOG_FORMATS as readonly string[]).includes(format)) throw new CliError(`--log-format: expected one of ${LOG_FORMATS.join(', ')}, got "${format}"`, EXIT.usage);
  const level = values['log-level'] ?? live.config.log.level;
  if (!LOG_LEVELS.includes(level)) throw new CliError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${level}"`, EXIT.usage);
  const log = createLogger(level, undefined, format as LogFormat);
  if (cluster.isPrimary && live.config.workers > 1) return runSupervisor(live, log, values.config);
  return runWorker(live, log, values.config);
}
