/**
 * RFC 2920 §3.1: a server "SHOULD elect to store responses to grouped RSET,
 * MAIL FROM ... and RCPT TO commands in an internal buffer so they can be
 * sent as a unit". smtp-server writes each reply the moment it has it, so a
 * pipelined MAIL, RCPT, DATA cost three writes (and three wake-ups of the
 * client), and the message's reply a fourth. Here the replies to one read of
 * the client's input are held while the parser still works through that
 * input, and leave in one write when it is done with it: that is, when it
 * next waits for the client. A client that does not pipeline sees no
 * difference: its one command is all the input there is.
 *
 * Only 250 and 354 are held. Anything else (a refusal, a 421 from a passed
 * deadline, STARTTLS's 220 before the handshake takes the socket, AUTH's
 * 334) first sends what is held, then itself, at once.
 */
import type { Socket } from 'node:net';

/** The parts of smtp-server's SMTPConnection and SMTPStream this reaches into (not in its types). */
interface Parser {
  _write(chunk: Buffer, encoding: BufferEncoding, next: (err?: Error | null) => void): void;
}
interface ConnectionInternals {
  _parser: Parser | false;
  _socket: Socket;
  _createParser(): Parser;
}

const HELD = new Set([250, 354]);

export interface ReplyBatch {
  /** Called before each reply: a 250 or 354 amid a group's input waits with the rest; any other sends what waits. */
  hold(code: number): void;
}

/** Wraps the connection's parsers (the one now, and STARTTLS's new one) so that `hold` knows when input is being worked through. */
export function batchReplies(connection: object): ReplyBatch {
  const c = connection as ConnectionInternals;
  const busy = new WeakMap<Parser, number>();
  let corked: Socket | undefined;

  const release = (): void => {
    const s = corked;
    corked = undefined;
    s?.uncork();
  };

  const wrap = (parser: Parser): Parser => {
    const write = parser._write;
    busy.set(parser, 0);
    parser._write = function (chunk, encoding, next) {
      busy.set(parser, (busy.get(parser) ?? 0) + 1);
      let called = false;
      write.call(this, chunk, encoding, (err) => {
        if (called) return;
        called = true;
        const left = (busy.get(parser) ?? 1) - 1;
        busy.set(parser, left);
        // The parser has finished this input (and any it read inside it): what waits goes now.
        if (left === 0) release();
        next(err);
      });
    };
    return parser;
  };

  if (c._parser) wrap(c._parser);
  const create = c._createParser;
  c._createParser = function () {
    return wrap(create.call(this));
  };

  return {
    hold(code) {
      const parser = c._parser;
      if (HELD.has(code) && parser && (busy.get(parser) ?? 0) > 0 && !c._socket.destroyed) {
        if (corked !== c._socket) {
          release();
          corked = c._socket;
          corked.cork();
        }
        return;
      }
      release();
    },
  };
}
