/**
 * Which signatures a message gets, from the author domain and the config:
 * the domain block (exact, else the nearest parent with `subdomains`), its DNS
 * policy, then the additional signatures (KumoMTA's model).
 */
import type { DomainBlock, Signer, SigningConfig } from '../config/types.js';
import type { KeyLookup } from '../dns/resolver.js';
import { checkPublished } from './published.js';

export type SigningPlan =
  | { readonly kind: 'sign'; readonly signers: readonly Signer[]; readonly notes: readonly string[] }
  /** Nothing to sign with: relay unsigned or refuse, as `unsigned` says. */
  | { readonly kind: 'unsigned'; readonly reason: string }
  /** TempFailIfNotInDNS said no: answer 451 so the client retries. */
  | { readonly kind: 'tempfail'; readonly reason: string };

export function findDomainBlock(signing: SigningConfig, author: string): DomainBlock | undefined {
  const exact = signing.domains.get(author);
  if (exact) return exact;
  const labels = author.split('.');
  for (let k = 1; k < labels.length - 1; k++) {
    const block = signing.domains.get(labels.slice(k).join('.'));
    if (block?.subdomains) return block;
  }
  return undefined;
}

export async function planSignatures(signing: SigningConfig, author: string | null, lookup: KeyLookup): Promise<SigningPlan> {
  const block = author === null ? undefined : findDomainBlock(signing, author);
  const notes: string[] = [];
  const signers: Signer[] = [];
  let domainSigned = false;

  if (block) {
    if (block.policy === 'SignAlways') {
      signers.push(block.signer);
      domainSigned = true;
    } else {
      const published = await checkPublished(block.signer, lookup);
      if (published.state === 'match') {
        signers.push(block.signer);
        domainSigned = true;
      } else if (block.policy === 'TempFailIfNotInDNS') {
        return { kind: 'tempfail', reason: `${block.name}: ${published.state === 'temperror' ? 'DNS error' : 'key not published'} at ${published.name}: ${published.detail}` };
      } else {
        // SignOnlyIfInDNS: carry on as if there were no block, so fallbacks apply.
        notes.push(`${block.name}: not signing, ${published.state} at ${published.name}`);
      }
    }
  }

  for (const name of block?.additionalSignatures ?? signing.defaultAdditional) {
    const extra = signing.signatures.get(name);
    if (!extra) continue; // the loader refuses unknown names; this is defensive
    if (extra.policy === 'Always' || !domainSigned) signers.push(extra.signer);
  }

  // The same d=/s= twice would be two identical signatures.
  const unique = signers.filter((s, i) => signers.findIndex((o) => o.domain === s.domain && o.selector === s.selector) === i);
  if (unique.length === 0) {
    const why = author === null ? 'no author domain' : block ? notes.join('; ') : `no [domain] block for ${author}`;
    return { kind: 'unsigned', reason: why };
  }
  return { kind: 'sign', signers: signing.singleSignature ? unique.slice(0, 1) : unique, notes };
}
