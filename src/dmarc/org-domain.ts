/**
 * Organizational domains (RFC 7489 §3.2) from the Public Suffix List, as
 * tldts ships it (the list's ICANN and private sections, wildcard and
 * exception rules). tldts is kept current by its maintainers, who publish a
 * release when the list changes: `npm update tldts` brings a site's list up
 * to date. A name that is itself a public suffix has no organizational
 * domain (null).
 */
import { getDomain } from 'tldts';
import { boundedMemo } from '../util/memo.js';

const OPTIONS = { allowPrivateDomains: true, extractHostname: false, validateHostname: false, mixedInputs: false } as const;

/** `domain` is a lower-case A-label name without a trailing dot. Kept by name: alignment asks for the same few again and again. */
export const organizationalDomain: (domain: string) => string | null = boundedMemo((domain) => getDomain(domain, OPTIONS), 10_000);

/** RFC 7489 §3.1: relaxed alignment is the same organizational domain, strict the same name. */
export function aligned(a: string, b: string, mode: 'r' | 's'): boolean {
  const x = a.toLowerCase().replace(/\.$/, '');
  const y = b.toLowerCase().replace(/\.$/, '');
  if (x === y) return true;
  if (mode === 's') return false;
  const org = organizationalDomain(x);
  return org !== null && org === organizationalDomain(y);
}
