/**
 * DMARC policy records (RFC 7489 §6.3, §6.6.3; `np` from the DMARCbis
 * drafts): which of the TXT records at `_dmarc.<domain>` is the policy, and
 * what it says. Tags follow DKIM's tag=value syntax; the ABNF's literals are
 * case-insensitive. Unknown tags are ignored (extensions); a record whose
 * `p` is missing or not a policy is one only if it names a report address
 * (§6.6.3 step 6: then it counts as `p=none`), else a permerror (§11.2).
 */

export type DmarcPolicy = 'none' | 'quarantine' | 'reject';
export type Alignment = 'r' | 's';

export interface DmarcRecord {
  readonly p: DmarcPolicy;
  readonly sp: DmarcPolicy | undefined;
  readonly np: DmarcPolicy | undefined;
  readonly adkim: Alignment;
  readonly aspf: Alignment;
  /** Percentage of failing mail the policy applies to (0..100). */
  readonly pct: number;
  readonly rua: readonly string[];
  /** The record as published (strings joined). */
  readonly text: string;
}

export type RecordSelection =
  | { readonly kind: 'none' }
  | { readonly kind: 'one'; readonly text: string }
  /** §6.6.3 step 5: more than one DMARC record means no policy. */
  | { readonly kind: 'several'; readonly count: number };

const VERSION = /^v[ \t]*=[ \t]*DMARC1[ \t]*(;|$)/;

/** The TXT records (each a list of character-strings, as octets) at `_dmarc.<domain>`: the one DMARC record, none, or several. */
export function selectDmarcRecord(records: readonly (readonly Buffer[])[]): RecordSelection {
  const dmarc = records.map((strings) => Buffer.concat(strings).toString('latin1')).filter((t) => VERSION.test(t));
  if (dmarc.length === 0) return { kind: 'none' };
  if (dmarc.length > 1) return { kind: 'several', count: dmarc.length };
  return { kind: 'one', text: dmarc[0]! };
}

const POLICIES = new Set<string>(['none', 'quarantine', 'reject']);

const policyOf = (value: string | undefined): DmarcPolicy | undefined => {
  const v = value?.toLowerCase();
  return v !== undefined && POLICIES.has(v) ? (v as DmarcPolicy) : undefined;
};

/** §6.2: a DMARC URI is a URI, optionally followed by "!" and a size. */
const reportUri = (u: string): boolean => /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(u.trim());

export type ParsedRecord = { readonly ok: true; readonly record: DmarcRecord } | { readonly ok: false; readonly reason: string };

export function parseDmarcRecord(text: string): ParsedRecord {
  if (!VERSION.test(text)) return { ok: false, reason: 'the record does not start with v=DMARC1' };
  if (/[^\x20-\x7e\t]/.test(text)) return { ok: false, reason: 'the record holds octets that are not printable ASCII' };
  const tags = new Map<string, string>();
  for (const spec of text.split(';')) {
    const t = spec.trim();
    if (t === '') continue;
    const eq = t.indexOf('=');
    if (eq <= 0) return { ok: false, reason: `"${t}" is not a tag=value pair` };
    const name = t.slice(0, eq).trim().toLowerCase();
    if (!/^[a-z][a-z0-9_-]*$/.test(name)) return { ok: false, reason: `"${t.slice(0, eq).trim()}" is not a tag name` };
    // The first of a repeated tag counts, as for the other receivers we agree with.
    if (!tags.has(name)) tags.set(name, t.slice(eq + 1).trim());
  }
  const rua = (tags.get('rua') ?? '').split(',').map((u) => u.trim()).filter((u) => u !== '');
  let p = policyOf(tags.get('p'));
  if (p === undefined) {
    const why = tags.has('p') ? `p=${tags.get('p')} is not a policy (none, quarantine or reject)` : 'the record has no p= tag';
    if (!rua.some(reportUri)) return { ok: false, reason: why };
    p = 'none';
  }
  const pctText = tags.get('pct');
  const pct = pctText !== undefined && /^\d{1,3}$/.test(pctText) && Number(pctText) <= 100 ? Number(pctText) : 100;
  const alignment = (v: string | undefined): Alignment => (v?.toLowerCase() === 's' ? 's' : 'r');
  return {
    ok: true,
    record: { p, sp: policyOf(tags.get('sp')), np: policyOf(tags.get('np')), adkim: alignment(tags.get('adkim')), aspf: alignment(tags.get('aspf')), pct, rua, text },
  };
}
