/**
 * DMARC (RFC 7489 §6.6): the policy of the From domain, found at
 * `_dmarc.<From domain>` or else at `_dmarc.<organizational domain>` (never
 * at a public suffix), and whether an authenticated identifier aligns with
 * the From domain. Discovery needs only the header block, so the listener
 * starts it when the header block is in and the body is still streaming;
 * evaluation needs the DKIM and SPF results and runs at the end.
 */
import type { WireResolver } from '../dns/wire.js';
import { boundedMemo } from '../util/memo.js';
import type { FromDomain } from './from.js';
import { aligned, organizationalDomain } from './org-domain.js';
import { parseDmarcRecord, selectDmarcRecord, type DmarcPolicy, type DmarcRecord } from './record.js';

export type DmarcResult = 'none' | 'pass' | 'fail' | 'temperror' | 'permerror';

export type Discovery =
  | { readonly kind: 'found'; readonly domain: string; readonly orgDomain: string | null; readonly record: DmarcRecord; readonly at: string; readonly policy: DmarcPolicy }
  | { readonly kind: 'none' | 'temperror' | 'permerror'; readonly domain: string | null; readonly orgDomain: string | null; readonly reason: string };

/** Parsed records by their text: the DNS cache hands back the same few. */
const parseOnce = boundedMemo(parseDmarcRecord, 2000);

type Lookup = { readonly kind: 'record'; readonly record: DmarcRecord } | { readonly kind: 'absent' } | { readonly kind: 'temperror' | 'permerror'; readonly reason: string };

async function lookupRecord(domain: string, dns: WireResolver): Promise<Lookup> {
  const name = `_dmarc.${domain}`;
  const answer = await dns.txt(name);
  switch (answer.kind) {
    case 'temperror':
      return { kind: 'temperror', reason: `DNS error looking up ${name}: ${answer.detail}` };
    case 'nxdomain':
    case 'nodata':
    case 'invalid-name':
      return { kind: 'absent' };
    case 'found': {
      const selected = selectDmarcRecord(answer.records);
      if (selected.kind === 'none') return { kind: 'absent' };
      // §6.6.3 step 5: several records are as good as none.
      if (selected.kind === 'several') return { kind: 'absent' };
      const parsed = parseOnce(selected.text);
      return parsed.ok ? { kind: 'record', record: parsed.record } : { kind: 'permerror', reason: `${name}: ${parsed.reason}` };
    }
  }
}

/** DMARCbis: a name with no A, AAAA or MX record (NXDOMAIN or NODATA for each) does not exist. A DNS error counts as existing. */
async function nonexistent(domain: string, dns: WireResolver): Promise<boolean> {
  const answers = await Promise.all([dns.a(domain), dns.aaaa(domain), dns.mx(domain)]);
  return answers.every((a) => a.kind === 'nxdomain' || a.kind === 'nodata');
}

export async function discoverPolicy(from: FromDomain, dns: WireResolver): Promise<Discovery> {
  if (from.kind !== 'domain') return { kind: from.kind, domain: null, orgDomain: null, reason: from.reason };
  const domain = from.domain;
  const orgDomain = organizationalDomain(domain);
  if (orgDomain === null) return { kind: 'none', domain, orgDomain, reason: `${domain} is a public suffix: no DMARC policy is looked up for it` };
  const own = await lookupRecord(domain, dns);
  if (own.kind === 'record') return { kind: 'found', domain, orgDomain, record: own.record, at: domain, policy: own.record.p };
  if (own.kind !== 'absent') return { kind: own.kind, domain, orgDomain, reason: own.reason };
  const absent = `no DMARC record at _dmarc.${domain}${orgDomain !== domain ? ` or _dmarc.${orgDomain}` : ''}`;
  if (orgDomain === domain) return { kind: 'none', domain, orgDomain, reason: absent };
  const org = await lookupRecord(orgDomain, dns);
  if (org.kind === 'absent') return { kind: 'none', domain, orgDomain, reason: absent };
  if (org.kind !== 'record') return { kind: org.kind, domain, orgDomain, reason: org.reason };
  const record = org.record;
  // A subdomain gets sp (or p); one that does not exist gets np where the record has it.
  const policy = record.np !== undefined && (await nonexistent(domain, dns)) ? record.np : (record.sp ?? record.p);
  return { kind: 'found', domain, orgDomain, record, at: orgDomain, policy };
}

export interface Identifiers {
  /** d= of each DKIM signature that passed (keys in testing mode excluded). */
  readonly dkimPass: readonly string[];
  /** The SPF result and the domain it was for (MAIL FROM's, or HELO's for a null sender); undefined when SPF did not run. */
  readonly spf: { readonly result: string; readonly domain: string } | undefined;
}

export interface DmarcOutcome {
  readonly result: DmarcResult;
  /** The From domain (header.from). */
  readonly domain: string | null;
  /** The policy for the From domain, before pct: p, sp for a subdomain, np for a subdomain that does not exist. */
  readonly policy: DmarcPolicy | undefined;
  /** What the receiver does: `none` for a pass; for a fail, the policy after pct sampling. */
  readonly disposition: DmarcPolicy | undefined;
  readonly aligned: { readonly dkim: string | null; readonly spf: string | null };
  /** The domain whose record was used. */
  readonly recordAt: string | undefined;
  readonly pct: number | undefined;
  readonly reason: string;
  /** Local policy changed the disposition (RFC 7489 §6.7's PolicyOverrideReason): a trusted ARC sealer vouched for the message. */
  readonly override?: { readonly type: 'trusted_forwarder'; readonly sealer: string; readonly vouch: string };
}

/** §6.6.4: mail not sampled by pct gets the next policy down. */
const LESS: Record<DmarcPolicy, DmarcPolicy> = { reject: 'quarantine', quarantine: 'none', none: 'none' };

export function evaluateDmarc(discovery: Discovery, ids: Identifiers, random: () => number = Math.random): DmarcOutcome {
  if (discovery.kind !== 'found') {
    return { result: discovery.kind, domain: discovery.domain, policy: undefined, disposition: undefined, aligned: { dkim: null, spf: null }, recordAt: undefined, pct: undefined, reason: discovery.reason };
  }
  const { record, domain, policy } = discovery;
  const dkim = ids.dkimPass.find((d) => aligned(d, domain, record.adkim)) ?? null;
  const spf = ids.spf !== undefined && ids.spf.result === 'pass' && aligned(ids.spf.domain, domain, record.aspf) ? ids.spf.domain : null;
  const base = { domain, policy, aligned: { dkim, spf }, recordAt: discovery.at, pct: record.pct };
  if (dkim !== null || spf !== null) {
    const by = [dkim !== null ? `DKIM d=${dkim}` : '', spf !== null ? `SPF ${spf}` : ''].filter((s) => s !== '').join(' and ');
    return Object.assign({}, base, { result: 'pass' as const, disposition: 'none' as const, reason: `aligned ${by}` });
  }
  const sampled = record.pct >= 100 || random() * 100 < record.pct;
  const disposition = sampled ? policy : LESS[policy];
  const mode = (m: 'r' | 's'): string => (m === 's' ? 'strict' : 'relaxed');
  const reason = `no ${mode(record.adkim)}ly aligned DKIM pass and no ${mode(record.aspf)}ly aligned SPF pass for ${domain}${sampled ? '' : ` (not sampled by pct=${record.pct})`}`;
  return Object.assign({}, base, { result: 'fail' as const, disposition, reason });
}
