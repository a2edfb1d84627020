/**
 * Errors that become SMTP replies. smtp-server reads `responseCode` and
 * `message`; it adds the enhanced status code itself (we advertise
 * ENHANCEDSTATUSCODES), so texts here carry none.
 */
import { replyText, type Reply, RelayError } from '../relay/client.js';

export class ReplyError extends Error {
  override name = 'ReplyError';
  readonly responseCode: number;
  constructor(responseCode: number, text: string, options?: ErrorOptions) {
    super(text, options);
    this.responseCode = responseCode;
  }
}

/** The next hop's own refusal, passed back with its code and words. */
export function fromReply(reply: Reply): ReplyError {
  return new ReplyError(reply.code, replyText(reply) || 'refused by the next hop');
}

/** Anything that went wrong while relaying: a temporary failure, so the client keeps the mail. */
export function toReply(err: unknown): ReplyError {
  if (err instanceof ReplyError) return err;
  if (err instanceof RelayError) {
    if (err.kind === 'connect') return new ReplyError(451, `Next hop is down (${err.message}); try again later`, { cause: err });
    return new ReplyError(451, `Next hop failed: ${err.message}; try again later`, { cause: err });
  }
  return new ReplyError(451, 'Internal error; try again later', { cause: err });
}
