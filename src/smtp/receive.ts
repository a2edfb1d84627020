/**
 * Reading DATA from smtp-server: line ends normalized once (the bytes we hash
 * are the bytes we relay), the header block buffered up to its limit, the body
 * streamed to the DKIM handler and the spool, the size limit enforced without
 * storing what is over it. smtp-server has already removed dot-stuffing.
 */
import type { Readable } from 'node:stream';
import { LineEndNormalizer, parseHeaderBlock } from '../dkim/index.js';
import type { MessageHead } from '../pipeline/message.js';
import { Spool } from './spool.js';

export interface BodyHandler {
  update(chunk: Uint8Array): void;
}

export interface ReceiveOptions<H extends BodyHandler> {
  readonly maxHeaderBytes: number;
  readonly maxHeaderFields: number;
  readonly maxMessageBytes: number;
  readonly spoolThresholdBytes: number;
  readonly spoolDir?: string;
  /** Called once the header block is complete; the body goes to what it returns. */
  readonly onHeaders: (head: MessageHead) => Promise<H>;
}

export type Received<H> =
  | { readonly kind: 'ok'; readonly head: MessageHead; readonly handler: H; readonly spool: Spool; readonly bytes: number }
  | { readonly kind: 'too-large'; readonly bytes: number }
  | { readonly kind: 'header-too-large'; readonly bytes: number }
  | { readonly kind: 'too-many-fields'; readonly bytes: number; readonly fields: number };

const SEPARATOR = Buffer.from('\r\n\r\n');

/** Reads the whole stream (always, so smtp-server can answer), then says what came. */
export async function receive<H extends BodyHandler>(stream: Readable, options: ReceiveOptions<H>): Promise<Received<H>> {
  const normalizer = new LineEndNormalizer();
  const spool = new Spool(options.spoolThresholdBytes, options.spoolDir);
  let head: Buffer[] = [];
  let headBytes = 0;
  let started: { readonly head: MessageHead; readonly handler: H } | undefined;
  let bytes = 0;
  let failure: 'too-large' | 'header-too-large' | 'too-many-fields' | 'error' | undefined;
  let fieldCount = 0;
  let error: unknown;

  const startBody = async (block: Buffer, rest: Buffer): Promise<void> => {
    head = [];
    const fields = parseHeaderBlock(block.toString('latin1'));
    if (fields.length > options.maxHeaderFields) {
      failure = 'too-many-fields';
      fieldCount = fields.length;
      return;
    }
    const message = { block, fields };
    const handler = await options.onHeaders(message);
    started = { head: message, handler };
    if (rest.length > 0) {
      handler.update(rest);
      await spool.write(rest);
    }
  };

  const take = async (chunk: Buffer): Promise<void> => {
    if (started === undefined) {
      head.push(chunk);
      headBytes += chunk.length;
      const joined = head.length === 1 ? chunk : Buffer.concat(head);
      head = [joined];
      const at = joined[0] === 0x0d && joined[1] === 0x0a ? -2 : joined.indexOf(SEPARATOR, Math.max(0, headBytes - chunk.length - 3));
      if (at === -2) {
        await startBody(Buffer.alloc(0), joined.subarray(2));
      } else if (at !== -1) {
        if (at + 2 > options.maxHeaderBytes) failure = 'header-too-large';
        else await startBody(joined.subarray(0, at + 2), joined.subarray(at + 4));
      } else if (headBytes > options.maxHeaderBytes) {
        failure = 'header-too-large';
      }
      return;
    }
    started.handler.update(chunk);
    await spool.write(chunk);
  };

  // The stream is always read to its end, whatever goes wrong: leaving the
  // loop early would destroy it, and smtp-server would answer while the
  // client is still sending, taking the rest of the message for commands.
  try {
    for await (const raw of stream as AsyncIterable<Buffer>) {
      const chunk = normalizer.push(raw);
      bytes += chunk.length;
      if (failure) continue;
      if (bytes > options.maxMessageBytes) {
        failure = 'too-large';
        continue;
      }
      try {
        await take(chunk);
      } catch (err) {
        failure = 'error';
        error = err;
      }
    }
  } catch (err) {
    // The stream itself failed (the client went away): nothing to drain.
    await spool.dispose();
    throw err;
  }
  if (failure === undefined && started === undefined) {
    // No empty line: the whole message is header (RFC 5322 allows an absent body).
    const all = Buffer.concat(head);
    try {
      await startBody(all.length > 0 && !all.subarray(-2).equals(Buffer.from('\r\n')) ? Buffer.concat([all, Buffer.from('\r\n')]) : all, Buffer.alloc(0));
    } catch (err) {
      failure = 'error';
      error = err;
    }
  }
  if (failure !== undefined || started === undefined) {
    await spool.dispose();
    if (failure === 'error') throw error;
    if (failure === 'too-many-fields') return { kind: failure, bytes, fields: fieldCount };
    return { kind: failure ?? 'header-too-large', bytes };
  }
  return { kind: 'ok', head: started.head, handler: started.handler, spool, bytes };
}
