/**
 * A whole message through a processor, as the offline commands need it: the
 * same split, the same parse, the same steps as a listener's transaction.
 */
import { findBodyStart, parseHeaderBlock } from '../dkim/index.js';
import type { Envelope, MessageProcessor, Processed } from './message.js';
import { NO_ENVELOPE } from './message.js';

/** `message` has CRLF line ends (normalize it first). Throws what the processor throws (a ReplyError to refuse or defer). */
export async function processMessage<R, E>(processor: MessageProcessor<R, E>, message: Buffer, envelope: Envelope = NO_ENVELOPE): Promise<Processed<R> & { readonly body: Buffer }> {
  const { headerEnd, bodyStart } = findBodyStart(message);
  // As `receive` does: a message without a body gets its header block's last CRLF.
  let block = message.subarray(0, headerEnd);
  if (bodyStart === headerEnd && block.length > 0 && !block.subarray(-2).equals(Buffer.from('\r\n'))) block = Buffer.concat([block, Buffer.from('\r\n')]);
  const run = await processor.start({ block, fields: parseHeaderBlock(block.toString('latin1')) }, envelope, processor.early?.(envelope));
  const body = message.subarray(bodyStart);
  run.update(body);
  return { ...(await run.finish()), body };
}
