/**
 * Local policy on a passing ARC chain (RFC 8617 §7.2, RFC 7489 §6.7): a
 * forwarder the receiver trusts vouches that the message passed DMARC when
 * it arrived there, so a DMARC fail after its changes gets the disposition
 * `none`, with the override reason `trusted_forwarder`. The result stays
 * `fail`: only what is done with the message changes.
 */
import type { Resinfo } from '../authres/parse.js';
import { isSameOrSubdomain } from '../dkim/signature.js';
import type { DmarcOutcome } from '../dmarc/evaluate.js';
import { aligned } from '../dmarc/org-domain.js';
import type { ArcOutcome } from './verify.js';

/** What the sealer recorded that vouches for the From domain, in words for the A-R comment; null when nothing does. */
export function vouchedBy(results: readonly Resinfo[], fromDomain: string): string | null {
  const from = fromDomain.toLowerCase();
  const domainOf = (v: string | undefined): string | undefined => v?.slice(v.lastIndexOf('@') + 1).toLowerCase();
  for (const r of results) {
    if (r.result !== 'pass') continue;
    if (r.method === 'dmarc' && (domainOf(r.props.get('header.from')) ?? from) === from) return 'dmarc=pass';
  }
  for (const r of results) {
    if (r.result !== 'pass') continue;
    const d = r.method === 'dkim' ? domainOf(r.props.get('header.d') ?? r.props.get('header.i')) : r.method === 'spf' ? domainOf(r.props.get('smtp.mailfrom')) : undefined;
    if (d !== undefined && aligned(d, from, 'r')) return `${r.method}=pass ${r.method === 'dkim' ? 'header.d' : 'smtp.mailfrom'}=${d}`;
  }
  return null;
}

export function isTrustedSealer(domain: string, trusted: readonly string[]): boolean {
  return trusted.some((t) => isSameOrSubdomain(domain, t));
}

/** The DMARC outcome after local policy: overridden for a trusted sealer that vouches for it, else as it was. */
export function applyTrustedForwarder(dmarc: DmarcOutcome, arc: ArcOutcome | undefined, trusted: readonly string[]): DmarcOutcome {
  if (dmarc.result !== 'fail' || arc?.result !== 'pass' || dmarc.domain === null) return dmarc;
  const sealer = arc.sealer?.d;
  if (sealer === undefined || !isTrustedSealer(sealer, trusted) || arc.sealerResults === undefined) return dmarc;
  const vouch = vouchedBy(arc.sealerResults.results, dmarc.domain);
  if (vouch === null) return dmarc;
  return { ...dmarc, disposition: 'none', override: { type: 'trusted_forwarder', sealer, vouch } };
}
