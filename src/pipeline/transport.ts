/**
 * `[out] transport_encoding = "7bit"` in the message path. While the message
 * streams in, a scan asks whether a 7-bit hop would change it; the answer is
 * no for nearly all mail, which is then signed as it came, in that same pass.
 * When the answer is yes, the spooled message is converted into a new spool
 * and signed afresh over what will be sent: the first pass's work is thrown
 * away, which costs only the messages that needed the conversion.
 *
 * A message the converter cannot handle is relayed as it came, with the
 * first pass's signatures (they are valid over those bytes), and the log
 * says so: a 4xx would only bring it back, unchanged, until it bounced.
 */
import { findBodyStart, parseHeaderBlock } from '../dkim/index.js';
import { SevenBitScan, type ConversionNeed } from '../mime/scan.js';
import { toSevenBit, type SevenBitResult } from '../mime/seven-bit.js';
import { Spool } from '../smtp/spool.js';
import { ReplyError } from '../smtp/replies.js';
import type { MessageHead, MessageRun } from './message.js';

const CRLF = Buffer.from('\r\n');

/** A processor's run that also scans the body it is given. */
export interface ScanningRun<R> extends MessageRun<R> {
  /** Once the body is complete: why the message needs converting, or undefined. */
  need(): ConversionNeed | undefined;
}

export function scanning<R>(run: MessageRun<R>, head: MessageHead): ScanningRun<R> {
  const scan = new SevenBitScan(head.fields);
  return {
    update(chunk) {
      run.update(chunk);
      scan.update(chunk);
    },
    finish: () => run.finish(),
    need: () => scan.end(),
  };
}

export interface Reencoded<R> {
  readonly head: MessageHead;
  readonly run: MessageRun<R>;
  readonly result: SevenBitResult;
}

/**
 * The spooled message (`head` and `body`) in 7-bit form: its body written to
 * `into`, and to a processor run started on its new header block.
 */
export async function reencodeSpooled<R>(head: MessageHead, body: Spool, into: Spool, start: (head: MessageHead) => Promise<MessageRun<R>>): Promise<Reencoded<R>> {
  let converted: { head: MessageHead; run: MessageRun<R> } | undefined;
  const source = async function* (): AsyncGenerator<Buffer> {
    yield head.block;
    yield CRLF;
    const reader = await body.reader();
    yield* reader as AsyncIterable<Buffer>;
  };
  const result = await toSevenBit(source, {
    head: async (block) => {
      const newHead = { block, fields: parseHeaderBlock(block.toString('latin1')) };
      converted = { head: newHead, run: await start(newHead) };
    },
    body: async (chunk) => {
      converted!.run.update(chunk);
      await into.write(chunk);
    },
  });
  if (!converted) throw new Error('the MIME splitter gave no header block');
  return { ...converted, result };
}

export interface ToSend<R> {
  readonly run: MessageRun<R>;
  /** The body to relay: the received one, or the converted one (then the received one is disposed of). */
  readonly spool: Spool;
  /** For the message's log line: `reencoded`, when it was converted. */
  readonly log: Record<string, unknown>;
  /** The conversion failed (the message goes as it came): why, for a warning of its own. */
  readonly failed?: { readonly because: ConversionNeed; readonly error: string };
}

/**
 * After receipt: the run and body to relay. When the scan found nothing (or
 * the run does not scan), the received ones; else the message converted into
 * a new spool beside the old (same threshold and directory), with a run
 * started afresh on it. `converted` is told each part changed.
 */
export async function bodyToSend<R>(
  head: MessageHead,
  received: { readonly run: MessageRun<R> | ScanningRun<R>; readonly spool: Spool },
  start: (head: MessageHead) => Promise<MessageRun<R>>,
  spool: { readonly thresholdBytes: number; readonly dir?: string | undefined },
  converted: (part: SevenBitResult['converted'][number]) => void,
): Promise<ToSend<R>> {
  const need = 'need' in received.run ? received.run.need() : undefined;
  if (need === undefined) return { run: received.run, spool: received.spool, log: {} };
  const into = new Spool(spool.thresholdBytes, spool.dir);
  try {
    const reencoded = await reencodeSpooled(head, received.spool, into, start);
    reencoded.result.converted.forEach(converted);
    await received.spool.dispose();
    return { run: reencoded.run, spool: into, log: conversionLog(need, reencoded.result) };
  } catch (err) {
    await into.dispose();
    // A ReplyError is the processor refusing the converted message: that stands. Anything else is the converter's.
    if (err instanceof ReplyError) throw err;
    return { run: received.run, spool: received.spool, log: {}, failed: { because: need, error: err instanceof Error ? err.message : String(err) } };
  }
}

/** The same for a message in memory (the offline commands): CRLF line ends, header block and body. */
export async function reencodeMessage(message: Buffer): Promise<{ readonly message: Buffer; readonly result: SevenBitResult } | undefined> {
  const { headerEnd, bodyStart } = findBodyStart(message);
  const scan = new SevenBitScan(parseHeaderBlock(message.subarray(0, headerEnd).toString('latin1')));
  scan.update(message.subarray(bodyStart));
  if (scan.end() === undefined) return undefined;
  const parts: Buffer[] = [];
  const result = await toSevenBit(() => [message], {
    head: (block) => {
      parts.push(block, CRLF);
    },
    body: (chunk) => {
      parts.push(chunk);
    },
  });
  return { message: Buffer.concat(parts), result };
}

/** The log's account of a conversion: one entry per part changed, and what could not be. */
export function conversionLog(need: ConversionNeed, result: SevenBitResult): Record<string, unknown> {
  return {
    reencoded: { because: need, parts: result.converted.map((c) => ({ part: c.part, type: c.type, from: c.from, to: c.to, why: c.why })), ...(result.leftAsIs.length > 0 ? { leftAsIs: result.leftAsIs } : {}) },
  };
}
