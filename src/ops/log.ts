/** The root logger: pino JSON lines on stdout; never key material. */
import { pino, type Logger } from 'pino';

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      // Defence in depth: these names never carry secrets in our code, but a
      // stray object with them must not print one.
      redact: { paths: ['key', '*.key', 'privateKey', '*.privateKey', 'pem', '*.pem', 'token', '*.token'], censor: '[redacted]' },
    },
    // Asynchronous: a synchronous write per log line costs the event loop a
    // syscall per message; lines written while one is in flight are coalesced.
    // Callers flush at shutdown.
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
