/**
 * Where the JSON log lines go: a file descriptor (stdout), written
 * synchronously, once per turn of the event loop. Every message writes a
 * line, and a line per write was one syscall, and one wake-up of the reader
 * (journald, a pipe), per message. Lines written in one turn now leave in one
 * write at its end (setImmediate): under load a write carries the lines of
 * many messages; at a trickle each line still goes out in the turn that made
 * it. What is held is at most one turn's lines, and it is written on the way
 * out (`exit`, which an uncaught exception also reaches); only a SIGKILL in
 * mid-turn loses it.
 *
 * A reader that has gone (EPIPE: the pipe's other end closed, say a log
 * collector that died) ends the output, not the process: the proxy goes on
 * relaying mail, with one line on stderr to say its log is lost. Throwing
 * would end every transaction in flight for the sake of lines no one can read.
 */
import { writeSync } from 'node:fs';

const WAIT = new Int32Array(new SharedArrayBuffer(4));

export class TurnBufferedOutput {
  private readonly fd: number;
  private held: string[] = [];
  private scheduled = false;
  private gone = false;
  private readonly flushSoon = (): void => {
    this.scheduled = false;
    this.flushSync();
  };

  constructor(fd: number) {
    this.fd = fd;
    process.once('exit', () => this.flushSync());
  }

  write(line: string): boolean {
    if (this.gone) return true;
    this.held.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushSoon);
    }
    return true;
  }

  /** pino's logger.flush(cb) lands here (at shutdown). */
  flush(callback?: (err?: Error) => void): void {
    this.flushSync();
    callback?.();
  }

  flushSync(): void {
    if (this.held.length === 0) return;
    let data = Buffer.from(this.held.length === 1 ? this.held[0]! : this.held.join(''), 'utf8');
    this.held = [];
    while (data.length > 0) {
      try {
        data = data.subarray(writeSync(this.fd, data));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') {
          this.lost();
          return;
        }
        // A non-blocking pipe whose reader is behind: wait for it, as a blocking write would.
        if (code !== 'EAGAIN' && code !== 'EBUSY') throw err;
        Atomics.wait(WAIT, 0, 0, 10);
      }
    }
  }

  private lost(): void {
    this.gone = true;
    this.held = [];
    try {
      writeSync(2, `dkim-proxy: the log output (fd ${this.fd}) was closed by its reader; log lines are dropped from now on\n`);
    } catch {
      // stderr may be the same closed pipe: nothing left to tell.
    }
  }
}
