/** The root logger: pino JSON lines on stdout, or pino-pretty for a person at a terminal; never key material. */
import { pino, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

export type LogFormat = 'auto' | 'json' | 'pretty';

export function createLogger(level: string, destination?: NodeJS.WritableStream, format: LogFormat = 'json'): Logger {
  const options = {
    level,
    base: { pid: process.pid },
    // Defence in depth: these names never carry secrets in our code, but a
    // stray object with them must not print one.
    redact: { paths: ['key', '*.key', 'privateKey', '*.privateKey', 'pem', '*.pem', 'token', '*.token'], censor: '[redacted]' },
  };
  const pretty = format === 'pretty' || (format === 'auto' && destination === undefined && process.stdout.isTTY === true);
  if (pretty) {
    // In-process and synchronous: a terminal is read by a person, not loaded by traffic.
    // On stdout, pino-pretty decides on colour itself (a TTY, NO_COLOR, FORCE_COLOR); never into another stream.
    return pino(options, pinoPretty({ destination: destination ?? 1, ...(destination ? { colorize: false } : {}), translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true }));
  }
  // Asynchronous: a synchronous write per log line costs the event loop a
  // syscall per message; lines written while one is in flight are coalesced.
  // Callers flush at shutdown.
  return pino(options, destination ?? pino.destination({ dest: 1, sync: false }));
}
