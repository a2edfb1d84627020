/**
 * ARC test material: a hop that writes its Authentication-Results and seals
 * with our sealer, and the changes a mailing list makes between receiving a
 * message and sending it on.
 */
import { findBodyStart, parseHeaderBlock } from '../../src/dkim/index.js';
import { MessageSealer, type PreparedSealer } from '../../src/arc/seal.js';
import { resultsAuthservId } from '../../src/pipeline/verify.js';

/** Prepends `Authentication-Results: ID; RESULTS`, first removing older fields of that id, as `in` does. */
export function withResults(message: Buffer, authservId: string, results: string): Buffer {
  const { headerEnd } = findBodyStart(message);
  const fields = parseHeaderBlock(message.toString('latin1', 0, headerEnd));
  const keep = fields.filter((f) => !(f.key === 'authentication-results' && resultsAuthservId(f) === authservId.toLowerCase()));
  const head = `Authentication-Results: ${authservId}; ${results}\r\n${keep.map((f) => f.raw).join('')}`;
  return Buffer.concat([Buffer.from(head, 'latin1'), message.subarray(headerEnd)]);
}

/** Seals with our sealer; throws when it refuses. */
export function seal(message: Buffer, sealer: PreparedSealer, now: number): Buffer {
  const { headerEnd, bodyStart } = findBodyStart(message);
  const s = new MessageSealer(sealer);
  s.update(message.subarray(bodyStart));
  const r = s.seal(parseHeaderBlock(message.toString('latin1', 0, headerEnd)), now);
  if (!r.ok) throw new Error(`seal refused: ${r.reason}`);
  return Buffer.concat([Buffer.from(r.fields.join(''), 'latin1'), message]);
}

/** What list software does: a tag in the Subject, a footer under the body. */
export function listChanges(message: Buffer, tag = '[list]'): Buffer {
  const text = message.toString('latin1');
  const at = text.indexOf('\r\n\r\n');
  const head = text.slice(0, at + 2).replace(/^Subject:[ \t]?/im, (m) => `${m}${tag} `);
  return Buffer.from(`${head}\r\n${text.slice(at + 4)}--\r\nlist footer: unsubscribe at https://lists.example.org/\r\n`, 'latin1');
}

/** Replaces the first match of `from` in the header block (a tampering step). */
export function editHeader(message: Buffer, from: RegExp, to: string): Buffer {
  const text = message.toString('latin1');
  const at = text.indexOf('\r\n\r\n');
  const head = text.slice(0, at);
  if (!from.test(head)) throw new Error(`editHeader: ${from} is not in the header`);
  return Buffer.from(head.replace(from, to) + text.slice(at), 'latin1');
}
