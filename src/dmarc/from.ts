/**
 * The RFC 5322.From domain DMARC evaluates (RFC 7489 §6.6.1). Unlike the
 * signing side's author domain, Sender never stands in for From here. A
 * From with several addresses in one domain is that domain; several domains
 * or several From fields cannot be evaluated as one (permerror), nor can an
 * address without a domain. A message without From has nothing to evaluate.
 */
import type { HeaderField } from '../dkim/index.js';
import { domainOf, mailboxes } from '../policy/author.js';

export type FromDomain =
  | { readonly kind: 'domain'; readonly domain: string }
  | { readonly kind: 'none' | 'permerror'; readonly reason: string };

export function fromDomain(fields: readonly HeaderField[]): FromDomain {
  const from = fields.filter((f) => f.key === 'from');
  if (from.length === 0) return { kind: 'none', reason: 'the message has no From field' };
  const addresses = from.flatMap((f) => mailboxes(f));
  if (addresses.length === 0) return { kind: 'permerror', reason: 'From holds no address' };
  const domains = new Set<string>();
  for (const a of addresses) {
    const d = domainOf(a);
    if (d === null) return { kind: 'permerror', reason: `From address "${a}" has no usable domain` };
    domains.add(d);
  }
  if (domains.size > 1) return { kind: 'permerror', reason: `From names ${domains.size} domains (${[...domains].slice(0, 3).join(', ')})` };
  if (from.length > 1) return { kind: 'permerror', reason: `${from.length} From fields (RFC 5322 allows one)` };
  return { kind: 'domain', domain: [...domains][0]! };
}
