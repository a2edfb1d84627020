/** The root logger: pino JSON lines on stdout, or pino-pretty for a person at a terminal; never key material. */
import { pino, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';
import { TurnBufferedOutput } from './log-output.js';

export type LogFormat = 'auto' | 'json' | 'pretty';

/** Field names that would hold secrets; our code never logs them, this is defence in depth. */
const SECRET_FIELDS = ['key', 'privateKey', 'pem', 'token'];
const CENSOR = '[redacted]';

export function createLogger(level: string, destination?: NodeJS.WritableStream, format: LogFormat = 'json'): Logger {
  const options = {
    level,
    base: { pid: process.pid },
    // A stray object with one of these names, at the top or one level down, must not print it.
    redact: { paths: SECRET_FIELDS.flatMap((f) => [f, `*.${f}`]), censor: CENSOR },
  };
  const pretty = format === 'pretty' || (format === 'auto' && destination === undefined && process.stdout.isTTY === true);
  if (pretty) {
    // In-process and synchronous: a terminal is read by a person, not loaded by traffic.
    // On stdout, pino-pretty decides on colour itself (a TTY, NO_COLOR, FORCE_COLOR); never into another stream.
    return pino(options, pinoPretty({ destination: destination ?? 1, ...(destination ? { colorize: false } : {}), translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true }));
  }
  // Synchronous, as pino's default is, but one write per turn of the event
  // loop rather than per line (log-output.ts). An asynchronous write goes
  // through libuv's thread pool, where it queues behind the RSA signatures
  // and costs a hand-over and a wake-up per line.
  return pino(options, destination ?? new TurnBufferedOutput(1));
}

/**
 * The logger for the per-message lines. Their fields are a fixed set of
 * strings, numbers and arrays of them (see the README's table), so only
 * top-level names are redacted: the one-level-down wildcard doubled the cost
 * of the line that every message writes.
 */
export function messageLogger(log: Logger): Logger {
  return log.child({}, { redact: { paths: SECRET_FIELDS, censor: CENSOR } });
}
