/**
 * The DATA phase's input (RFC 5321 §4.5.2): dot-stuffed lines, ended by
 * CRLF "." CRLF. smtp-server finds both by looking at every octet of the
 * message in a JavaScript loop, and hands each escaped dot to the next turn
 * of the event loop. Here the search is Buffer.indexOf (native) for "\n.",
 * the only place either can be, and a chunk's pieces leave together.
 *
 * The rules, as Postfix's smtpd applies them:
 * - A line that starts with "." loses that first ".", whatever follows it
 *   (RFC 5321 §4.5.2: "the first character is deleted"). smtp-server
 *   deleted it only before a second "."; a client that does not stuff is
 *   wrong either way, and this way the next hop gets what it would have
 *   got without us.
 * - A line starts at the start of the message and after each LF (a bare LF
 *   too, as before).
 * - Only CRLF "." CRLF ends the message; the CRLF before the "." belongs to
 *   the message.
 */

const LF_DOT = Buffer.from('\n.');

export interface DataScan {
  /** The message's octets in this input, unstuffed, in order. */
  readonly pieces: Buffer[];
  /** The input after the terminator, when the message ended in it. */
  readonly rest?: Buffer;
  /** Octets that cannot be decided without what comes next: scan them again in front of it. */
  readonly keep: Buffer;
  /** Whether `keep` still starts the message's first line (nothing of it taken, no dot removed). */
  readonly atStart: boolean;
}

const EMPTY = Buffer.alloc(0);

/**
 * One chunk of the DATA phase, with what the last call kept in front of it.
 * `atStart`: the input starts the message's first line (the first call, or
 * the last call's `atStart`).
 */
export function scanData(input: Buffer, atStart: boolean): DataScan {
  const pieces: Buffer[] = [];
  let from = 0;
  if (atStart && input[0] === 0x2e) {
    if (input.length < 3) return { pieces, keep: input, atStart: true };
    if (input[1] === 0x0d && input[2] === 0x0a) return { pieces, rest: input.subarray(3), keep: EMPTY, atStart: false };
    from = 1;
  }
  const n = input.length;
  /** Ends the scan at an LF (or the end) that the next chunk decides, keeping a CR before it for the terminator test. */
  const stopAt = (lf: number): DataScan => {
    const keepFrom = Math.max(from, lf > 0 && input[lf - 1] === 0x0d ? lf - 1 : lf);
    if (keepFrom > from) pieces.push(input.subarray(from, keepFrom));
    return { pieces, keep: input.subarray(keepFrom), atStart: atStart && from === 0 && keepFrom === 0 };
  };
  for (;;) {
    const lf = input.indexOf(LF_DOT, from);
    if (lf === -1) {
      // A last LF may be followed by the dot of the next chunk, a last CR by the LF of a terminator.
      if (n > from && input[n - 1] === 0x0a) return stopAt(n - 1);
      if (n > from && input[n - 1] === 0x0d) return stopAt(n);
      if (n > from) pieces.push(input.subarray(from, n));
      return { pieces, keep: EMPTY, atStart: atStart && n === 0 };
    }
    // The two octets after the dot decide between the terminator and a stuffed line.
    if (lf + 3 >= n) return stopAt(lf);
    const dot = lf + 1;
    if (input[dot + 1] === 0x0d && input[dot + 2] === 0x0a && lf > 0 && input[lf - 1] === 0x0d) {
      pieces.push(input.subarray(from, dot));
      return { pieces, rest: input.subarray(dot + 3), keep: EMPTY, atStart: false };
    }
    pieces.push(input.subarray(from, dot));
    from = dot + 1;
  }
}

/** The parts of smtp-server's SMTPStream that its data mode uses (not in its types). */
interface DataModeInternals {
  _lastBytes: Buffer | false;
  _atDataStart: boolean;
  _dataStream: import('node:stream').PassThrough | null;
  _countDataBytes(length: number): void;
  _endDataMode(chunk: Buffer | false, remainder: Buffer, done: (err?: Error | null) => void): void;
  _feedDataStream(chunk: Buffer, done: (err?: Error | null) => void): void;
}

/**
 * Puts scanData in place of smtp-server's own scan, on one parser (a
 * connection gets a new one after STARTTLS). The rest of its data mode
 * (the size count, the end of the phase, waiting for a full data stream)
 * is smtp-server's, called as its own scan calls it. False when the
 * parser is not the shape this expects, and is left as it was.
 */
export function useDataScanner(parser: object): boolean {
  const p = parser as DataModeInternals;
  // An smtp-server whose data mode is not the one this was written against keeps its own scan (proxy-out's dot test then fails).
  if (typeof p._feedDataStream !== 'function' || typeof p._countDataBytes !== 'function' || typeof p._endDataMode !== 'function' || !('_lastBytes' in p) || !('_atDataStart' in p)) return false;
  p._feedDataStream = function (this: DataModeInternals, chunk, done) {
    const input = this._lastBytes && this._lastBytes.length > 0 ? Buffer.concat([this._lastBytes, chunk]) : chunk;
    this._lastBytes = false;
    const scan = scanData(input, this._atDataStart);
    const body = scan.pieces.length === 1 ? scan.pieces[0]! : scan.pieces.length > 0 ? Buffer.concat(scan.pieces) : undefined;
    if (body) this._countDataBytes(body.length);
    if (scan.rest) {
      this._atDataStart = false;
      this._endDataMode(body ?? false, scan.rest, done);
      return;
    }
    this._atDataStart = scan.atStart;
    if (scan.keep.length > 0) this._lastBytes = scan.keep;
    const stream = this._dataStream;
    if (!body || !stream?.writable) return done();
    if (stream.write(body) || stream.destroyed) return done();
    // The handler reads slower than the client sends: take no more input until it catches up (or goes).
    const resume = (): void => {
      stream.removeListener('drain', resume);
      stream.removeListener('close', resume);
      done();
    };
    stream.once('drain', resume);
    stream.once('close', resume);
  };
  return true;
}
