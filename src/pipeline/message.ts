/**
 * The path of one message through a listener, and through the offline
 * commands that must answer as the listener would: receive → process →
 * relay. A processor sees the header block once it is complete (parsed once,
 * here), the body chunks as they stream, and at the end says what goes in
 * front of the header block and which header block is sent.
 *
 * A processor refuses or defers a message by throwing a ReplyError; what it
 * decided otherwise is its typed report, which the listener logs and the
 * commands print.
 */
import type { HeaderField } from '../dkim/index.js';
import type { ReplyError } from '../smtp/replies.js';

/** What is known of the transaction before the message. */
export interface Envelope {
  /** The client the message came from: XFORWARD's ADDR when an allowed client sent it, else the socket's peer. */
  readonly clientAddress: string | undefined;
  /** XFORWARD said ADDR=[UNAVAILABLE]: the client is not known (and is not the socket's peer, which is Postfix). */
  readonly clientAddressUnavailable?: boolean;
  readonly helo: string | undefined;
  /** The reverse path; empty for a null sender (bounces). */
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  /** The SMTP AUTH user of the session, with the domains it may sign for. */
  readonly user?: { readonly name: string; readonly domains: readonly string[] };
}

/** The header block as received (CRLF line ends, ending with the last field's CRLF) and its fields. */
export interface MessageHead {
  readonly block: Buffer;
  readonly fields: readonly HeaderField[];
}

export interface Processed<R> {
  /** Fields that go in front of the header block (each ending in CRLF). */
  readonly prepend: Buffer;
  /** The header block to send: the received one, or one with fields removed. */
  readonly headerBlock: Buffer;
  readonly report: R;
  /** The processor's verdict refuses or defers the message: the listener answers this and relays nothing. */
  readonly refusal?: ReplyError;
}

/** One message in a processor. */
export interface MessageRun<R> {
  /** A body chunk, CRLF line ends, dot-stuffing removed. */
  update(chunk: Uint8Array): void;
  finish(): Promise<Processed<R>>;
}

export interface MessageProcessor<R, E = unknown> {
  /**
   * The envelope is known (sender and first recipient accepted): work that
   * needs only it can start now, while the client sends the rest. What it
   * returns goes to `start` for the same transaction.
   */
  early?(envelope: Envelope): E;
  /** Throws a ReplyError to refuse or defer the message; the body is then not needed. */
  start(head: MessageHead, envelope: Envelope, early?: E): Promise<MessageRun<R>>;
  /** The report's fields for the per-message log line. */
  logFields(report: R): Record<string, unknown>;
}

/** The envelope of an offline command: nothing known beyond what its flags say. */
export const NO_ENVELOPE: Envelope = Object.freeze({ clientAddress: undefined, helo: undefined, mailFrom: '', rcptTo: [] });
