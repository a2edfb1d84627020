/**
 * Is a signer's public key published, and does it match the private key?
 * The question behind SignOnlyIfInDNS, TempFailIfNotInDNS and dns-check.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { keyQueryName, parseKeyRecord } from '../dkim/index.js';
import type { Signer } from '../config/types.js';
import type { KeyLookup } from '../dns/resolver.js';

export type Published =
  | { readonly state: 'match'; readonly testing: boolean; readonly name: string }
  | { readonly state: 'mismatch' | 'absent' | 'malformed' | 'revoked'; readonly name: string; readonly detail: string }
  | { readonly state: 'temperror'; readonly name: string; readonly detail: string };

const spki = (k: KeyObject): Buffer => (k.type === 'public' ? k : createPublicKey(k)).export({ format: 'der', type: 'spki' });

export async function checkPublished(signer: Signer, lookup: KeyLookup): Promise<Published> {
  const name = keyQueryName({ s: signer.selector, d: signer.domain });
  const answer = await lookup(name);
  if (answer.kind === 'temperror') return { state: 'temperror', name, detail: answer.detail ?? answer.reason };
  if (answer.kind === 'nxdomain' || answer.records.length === 0) return { state: 'absent', name, detail: `no TXT record at ${name}` };
  const ours = spki(signer.key.key);
  let detail = '';
  let revoked = false;
  for (const txt of answer.records) {
    const r = parseKeyRecord(txt);
    if (!r.ok) {
      detail ||= `${r.tag ? `${r.tag}=: ` : ''}${r.message}`;
      continue;
    }
    if (r.record.publicKey === null) {
      revoked = true;
      continue;
    }
    if (spki(r.record.publicKey).equals(ours)) return { state: 'match', testing: r.record.testing, name };
    detail = `the published ${r.record.keyType} key is not the one in ${signer.keySource}`;
  }
  if (detail.startsWith('the published')) return { state: 'mismatch', name, detail };
  if (revoked) return { state: 'revoked', name, detail: 'the record has an empty p= (key revoked)' };
  return { state: 'malformed', name, detail: detail || 'no DKIM key record among the TXT records' };
}
