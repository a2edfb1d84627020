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

/**
 * Which of a block's selectors signs (key rotation): the first whose record
 * is published and matches its private key. The lookups go through the key
 * cache, so a pending selector is asked again as its answer's TTL (or the
 * negative TTL) allows, and takes over without a restart. A single selector
 * under SignAlways is not looked up at all.
 */
export type Choice =
  | { readonly kind: 'match'; readonly signer: Signer }
  | { readonly kind: 'none'; readonly first: Signer; readonly reason: string; readonly states: string };

export async function chooseSigner(candidates: readonly Signer[], lookup: KeyLookup): Promise<Choice> {
  const reasons: string[] = [];
  const states: string[] = [];
  for (const signer of candidates) {
    const published = await checkPublished(signer, lookup);
    if (published.state === 'match') return { kind: 'match', signer };
    const what = published.state === 'temperror' ? 'DNS error' : published.state === 'absent' ? 'key not published' : published.state === 'mismatch' ? 'a different key published' : `key ${published.state}`;
    reasons.push(`${what} at ${published.name}: ${published.detail}`);
    states.push(`${published.state} at ${published.name}`);
  }
  return { kind: 'none', first: candidates[0]!, reason: reasons.join('; '), states: states.join('; ') };
}

/** Remembers, per block, which selector signed last: a change is reported once. */
export class SelectorMemory {
  private readonly last = new Map<string, string>();
  /** The previous selector when `selector` differs from it (undefined the first time, and when unchanged). */
  note(block: string, selector: string): string | undefined {
    const before = this.last.get(block);
    this.last.set(block, selector);
    return before !== undefined && before !== selector ? before : undefined;
  }
}

export interface SelectorSwitch {
  readonly block: string;
  readonly domain: string;
  readonly from: string;
  readonly to: string;
}

export async function planSignatures(signing: SigningConfig, author: string | null, lookup: KeyLookup, memory?: SelectorMemory, switched?: (s: SelectorSwitch) => void): Promise<SigningPlan> {
  const block = author === null ? undefined : findDomainBlock(signing, author);
  const notes: string[] = [];
  const signers: Signer[] = [];
  let domainSigned = false;
  const use = (name: string, signer: Signer): void => {
    signers.push(signer);
    const from = memory?.note(name, signer.selector);
    if (from !== undefined) switched?.({ block: name, domain: signer.domain, from, to: signer.selector });
  };

  if (block) {
    const name = `domain.${block.name}`;
    if (block.policy === 'SignAlways' && block.candidates.length === 1) {
      use(name, block.signer);
      domainSigned = true;
    } else {
      const choice = await chooseSigner(block.candidates, lookup);
      if (choice.kind === 'match') {
        use(name, choice.signer);
        domainSigned = true;
      } else if (block.policy === 'SignAlways') {
        use(name, choice.first);
        domainSigned = true;
      } else if (block.policy === 'TempFailIfNotInDNS') {
        return { kind: 'tempfail', reason: `${block.name}: ${choice.reason}` };
      } else {
        // SignOnlyIfInDNS: carry on as if there were no block, so fallbacks apply.
        notes.push(`${block.name}: not signing, ${choice.states}`);
      }
    }
  }

  for (const extraName of block?.additionalSignatures ?? signing.defaultAdditional) {
    const extra = signing.signatures.get(extraName);
    if (!extra) continue; // the loader refuses unknown names; this is defensive
    if (!(extra.policy === 'Always' || !domainSigned)) continue;
    // No DNS policy of its own: the first published selector, else the first.
    const choice = extra.candidates.length === 1 ? undefined : await chooseSigner(extra.candidates, lookup);
    use(`signature.${extra.name}`, choice?.kind === 'match' ? choice.signer : extra.signer);
  }

  // The same d=/s= twice would be two identical signatures.
  const unique = signers.filter((s, i) => signers.findIndex((o) => o.domain === s.domain && o.selector === s.selector) === i);
  if (unique.length === 0) {
    const why = author === null ? 'no author domain' : block ? notes.join('; ') : `no [domain] block for ${author}`;
    return { kind: 'unsigned', reason: why };
  }
  return { kind: 'sign', signers: signing.singleSignature ? unique.slice(0, 1) : unique, notes };
}
