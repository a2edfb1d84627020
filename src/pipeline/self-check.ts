/**
 * `[signing] self_check`: each signature is verified against the public half
 * of its own key (no DNS) before the message goes on. A signature that does
 * not verify (a key swapped under us, a fault in the signing path) is never
 * sent: the client is told to try again, the log says which and why.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Signer } from '../config/types.js';
import { formatKeyRecord, parseHeaderBlock, viewOutcome, type HeaderField } from '../dkim/index.js';
import type { BodyHashSet } from '../dkim/bodyhash.js';
import { parseSignature } from '../dkim/signature.js';
import { checkSignature } from '../dkim/verify.js';

const records = new WeakMap<KeyObject, string>();

function recordOf(key: KeyObject): string {
  let r = records.get(key);
  if (r === undefined) {
    r = formatKeyRecord(createPublicKey(key));
    records.set(key, r);
  }
  return r;
}

/** The first signature that fails its own check, with why; undefined when all pass. `made[k]` was made by `signers[k]`. */
export function selfCheck(made: readonly string[], signers: readonly Signer[], head: readonly HeaderField[], bodies: BodyHashSet, now: number): { readonly signer: Signer; readonly reason: string } | undefined {
  const fields = [...parseHeaderBlock(made.join('')), ...head];
  for (const [k, signer] of signers.entries()) {
    const field = fields[k]!;
    const parsed = parseSignature(field);
    if (!parsed.ok) return { signer, reason: `the signature we made does not parse: ${parsed.message}` };
    const sig = parsed.signature;
    const body = bodies.result(bodies.want(sig.canonicalization.body, sig.hash, undefined));
    const outcome = checkSignature(fields, sig, { kind: 'found', records: [recordOf(signer.key.key)] }, body, now, { allowSha1: true, allowShortKeys: true });
    if (outcome.result !== 'pass') {
      const v = viewOutcome(outcome);
      return { signer, reason: `${v.reason ?? v.result}${v.detail ? ` (${v.detail})` : ''}, checked against ${signer.keySource}` };
    }
  }
  return undefined;
}
