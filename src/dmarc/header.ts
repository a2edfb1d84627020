/**
 * The `dmarc=` method result as OpenDMARC, rspamd and Gmail write it, which
 * is what Sieve rules, Roundcube's plugins and OpenDMARC's
 * TrustedAuthservIDs read: `dmarc=fail (p=reject dis=reject) header.from=example.com`.
 */
import { commentText, pvalue } from '../dkim/index.js';
import type { DmarcOutcome } from './evaluate.js';

export function dmarcResinfo(o: DmarcOutcome): string {
  const policy = o.policy !== undefined && o.disposition !== undefined ? `p=${o.policy} dis=${o.disposition}` : commentText(o.reason);
  const comment = o.override ? `${policy}; override=${o.override.type}: ARC sealed by ${o.override.sealer}, which saw ${commentText(o.override.vouch)}` : policy;
  return `dmarc=${o.result} (${comment})${o.domain !== null ? ` header.from=${pvalue(o.domain)}` : ''}`;
}
