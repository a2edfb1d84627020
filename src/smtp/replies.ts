/**
 * Errors that become SMTP replies. smtp-server reads `responseCode` and
 * `message`; the message starts with the RFC 3463 code, and the listener
 * (see `exact-codes.ts`) keeps smtp-server from adding one of its own, so a
 * next hop's `550 5.1.1` reaches the client as it was sent.
 */
import { replyText, type Reply, RelayError } from '../relay/client.js';

export type EnhancedCode = `${2 | 4 | 5}.${number}.${number}`;

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}$/;

export class ReplyError extends Error {
  override name = 'ReplyError';
  readonly responseCode: number;
  readonly enhanced: EnhancedCode;
  /** The text without the enhanced code, for logs. */
  readonly text: string;
  constructor(responseCode: number, enhanced: EnhancedCode, text: string, options?: ErrorOptions) {
    super(`${enhanced} ${text}`, options);
    this.responseCode = responseCode;
    this.enhanced = enhanced;
    this.text = text;
  }

  /** Temporary (4xx): the client keeps the message and tries again. */
  get temporary(): boolean {
    return this.responseCode >= 400 && this.responseCode < 500;
  }
}

/** A refusal or deferral a processor decided on, with its reason in words (for the commands and the log). */
export class PolicyReply extends ReplyError {
  override name = 'PolicyReply';
  readonly reason: string;
  constructor(responseCode: number, enhanced: EnhancedCode, text: string, reason: string) {
    super(responseCode, enhanced, text);
    this.reason = reason;
  }
}

/** RFC 3463's "other undefined status" of the reply's class, for a next hop that gave no code. */
function classCode(code: number): EnhancedCode {
  return `${code >= 500 ? 5 : code >= 400 ? 4 : 2}.0.0` as EnhancedCode;
}

/** The next hop's own refusal, passed back with its code, enhanced code and words. */
export function fromReply(reply: Reply): ReplyError {
  const enhanced = reply.enhanced !== undefined && ENHANCED.test(reply.enhanced) && reply.enhanced[0] === String(reply.code)[0] ? (reply.enhanced as EnhancedCode) : classCode(reply.code);
  return new ReplyError(reply.code, enhanced, replyText(reply) || 'refused by the next hop');
}

/** A positive next-hop reply as the client should see it: its enhanced code kept. */
export function acceptedText(reply: Reply): string {
  const text = replyText(reply);
  return reply.enhanced !== undefined && ENHANCED.test(reply.enhanced) ? `${reply.enhanced} ${text}` : text;
}

/** The spool could not be written (disk full, directory gone): RFC 3463 4.3.1, "mail system full". */
export class SpoolError extends Error {
  override name = 'SpoolError';
}

export const replies = {
  messageTooLarge: (limit: number) => new ReplyError(552, '5.3.4', `Message exceeds the size limit of ${limit} bytes`),
  headerTooLarge: (limit: number) => new ReplyError(552, '5.3.4', `Header block exceeds the limit of ${limit} bytes`),
  tooManyFields: (count: number, limit: number) => new ReplyError(552, '5.3.4', `Too many header fields: ${count}, the limit is ${limit}`),
  accessDenied: (address: string, what: string) => new ReplyError(554, '5.7.1', `Access denied: ${address} may not use this ${what} proxy`),
  tooManyConnections: (address: string, limit: number) => new ReplyError(421, '4.7.0', `Too many connections from ${address} (the limit is ${limit}); try again later`),
  hopLost: (when: string) => new ReplyError(451, '4.4.2', `Next hop connection lost ${when}; try again later`),
  notSigned: (reason: string) => new PolicyReply(451, '4.7.5', `Not signed, try again later: ${reason}`, reason),
  refusedUnsigned: (reason: string) => new PolicyReply(550, '5.7.1', `Refused: no signing rule for this message (${reason})`, reason),
  spoolFailed: (cause: unknown) => new ReplyError(452, '4.3.1', 'Cannot store the message for relaying now; try again later', { cause }),
} as const;

/** Anything that went wrong while relaying: a temporary failure, so the client keeps the mail. */
export function toReply(err: unknown): ReplyError {
  if (err instanceof ReplyError) return err;
  if (err instanceof SpoolError) return replies.spoolFailed(err);
  if (err instanceof RelayError) {
    if (err.kind === 'connect') return new ReplyError(451, '4.4.1', `Next hop is down (${err.message}); try again later`, { cause: err });
    return new ReplyError(451, '4.4.2', `Next hop failed: ${err.message}; try again later`, { cause: err });
  }
  return new ReplyError(451, '4.3.0', 'Internal error; try again later', { cause: err });
}
