/**
 * The ARC sets of a message (RFC 8617 §4): which fields belong to which
 * instance, and whether the chain's form holds before any key is asked for
 * (§5.2 steps 1 and 2: complete sets 1..N, no duplicates, at most 50, `cv=`
 * values that agree with their place). Pure.
 */
import { parseArcAuthenticationResults, type ParsedResults } from '../authres/parse.js';
import { asciiLower, type HeaderField } from '../dkim/headers.js';
import {
  algorithmParts,
  fieldValue,
  fitsDns,
  isDomainName,
  MAX_ARC_INSTANCE,
  parseInstance,
  parseSignature,
  SIGNING_ALGORITHMS,
  type DkimSignature,
  type KeyType,
  type SigningAlgorithm,
} from '../dkim/signature.js';
import { parseTagList, stripFws, stripTagValue } from '../dkim/tags.js';
import type { HashAlgorithm } from '../dkim/bodyhash.js';

export type ChainValidation = 'none' | 'pass' | 'fail';

/** An ARC-Seal (RFC 8617 §4.1.3), checked for form. */
export interface ArcSeal {
  readonly field: HeaderField;
  readonly instance: number;
  readonly cv: ChainValidation;
  readonly algorithm: SigningAlgorithm;
  readonly keyType: KeyType;
  readonly hash: HashAlgorithm;
  /** Lower-cased. */
  readonly d: string;
  readonly s: string;
  readonly t: number | undefined;
  readonly b: Buffer;
  readonly bText: string;
  /** The field with its `b=` value removed. */
  readonly strippedRaw: string;
}

export interface ArcSet {
  readonly instance: number;
  readonly aar: HeaderField;
  readonly results: ParsedResults;
  readonly ams: DkimSignature;
  readonly seal: ArcSeal;
}

export type ArcChain =
  | { readonly kind: 'none' }
  /** The form is broken: the chain fails without any key being asked for. `instance`: the highest one found, 0 if none. */
  | { readonly kind: 'broken'; readonly instance: number; readonly reason: string }
  /** `sets[k]` is instance k + 1. */
  | { readonly kind: 'sets'; readonly sets: readonly ArcSet[] };

export const ARC_FIELDS = ['arc-seal', 'arc-message-signature', 'arc-authentication-results'] as const;
type ArcFieldKey = (typeof ARC_FIELDS)[number];

const LABEL: Record<ArcFieldKey, string> = {
  'arc-seal': 'ARC-Seal',
  'arc-message-signature': 'ARC-Message-Signature',
  'arc-authentication-results': 'ARC-Authentication-Results',
};

export function isArcField(f: HeaderField): boolean {
  return (ARC_FIELDS as readonly string[]).includes(f.key);
}

/** The `i=` of an ARC field, or null when it has none that is valid. Unbounded, so that i=51 can be told apart. */
export function instanceOf(f: HeaderField): number | null {
  const value = fieldValue(f);
  if (f.key === 'arc-authentication-results') {
    const m = /^[ \t\r\n]*i[ \t\r\n]*=[ \t\r\n]*([0-9]{1,3})[ \t\r\n]*;/.exec(value);
    return m ? Number(m[1]) : null;
  }
  const tags = parseTagList(value);
  if (!tags.ok) return null;
  const i = tags.tags.get('i')?.value;
  if (i === undefined) return null;
  const v = stripFws(i);
  return /^[0-9]{1,3}$/.test(v) ? Number(v) : null;
}

/** The highest instance among the ARC fields (0 when there are none or none has a readable `i=`). */
export function highestInstance(fields: readonly HeaderField[]): number {
  let n = 0;
  for (const f of fields) if (isArcField(f)) n = Math.max(n, instanceOf(f) ?? 0);
  return n;
}

export function readChain(fields: readonly HeaderField[]): ArcChain {
  const arc = fields.filter(isArcField);
  if (arc.length === 0) return { kind: 'none' };
  // Each field parsed once: its instance comes from the parse when the field is sound.
  const parsed = arc.map((f) => {
    switch (f.key as ArcFieldKey) {
      case 'arc-message-signature': {
        const ams = parseSignature(f, 'ams');
        return { f, instance: ams.ok ? ams.signature.instance! : instanceOf(f), ams };
      }
      case 'arc-seal': {
        const seal = parseSeal(f);
        return { f, instance: seal.ok ? seal.seal.instance : instanceOf(f), seal };
      }
      case 'arc-authentication-results':
        return { f, instance: instanceOf(f) };
    }
  });
  let highest = 0;
  for (const p of parsed) highest = Math.max(highest, p.instance ?? 0);
  const broken = (reason: string): ArcChain => ({ kind: 'broken', instance: highest, reason });
  const byInstance = new Map<number, Partial<Record<ArcFieldKey, (typeof parsed)[number]>>>();
  for (const p of parsed) {
    const key = p.f.key as ArcFieldKey;
    const i = p.instance;
    if (i === null || i < 1) return broken(`an ${LABEL[key]} has no valid i=`);
    if (i > MAX_ARC_INSTANCE) return broken(`i=${i}: a chain has at most ${MAX_ARC_INSTANCE} sets`);
    const set = byInstance.get(i) ?? {};
    if (set[key]) return broken(`i=${i} has more than one ${LABEL[key]}`);
    set[key] = p;
    byInstance.set(i, set);
  }
  const sets: ArcSet[] = [];
  for (let i = 1; i <= highest; i++) {
    const set = byInstance.get(i);
    if (set === undefined) return broken(`i=${i} is missing (the sets must run 1 to ${highest} without gaps)`);
    for (const key of ARC_FIELDS) if (!set[key]) return broken(`i=${i} has no ${LABEL[key]}`);
    const aar = set['arc-authentication-results']!.f;
    const results = parseArcAuthenticationResults(fieldValue(aar));
    if (results === null) return broken(`i=${i}: the ARC-Authentication-Results does not parse`);
    const ams = set['arc-message-signature']!.ams!;
    if (!ams.ok) return broken(`i=${i}: ARC-Message-Signature ${ams.tag ? `${ams.tag}=: ` : ''}${ams.message}`);
    const seal = set['arc-seal']!.seal!;
    if (!seal.ok) return broken(`i=${i}: ARC-Seal ${seal.tag ? `${seal.tag}=: ` : ''}${seal.message}`);
    sets.push({ instance: i, aar, results, ams: ams.signature, seal: seal.seal });
  }
  // RFC 8617 §5.2 step 2.1: the cv= values first, before any key is looked up.
  const newest = sets[sets.length - 1]!;
  if (newest.seal.cv === 'fail') return broken(`i=${newest.instance}: the newest ARC-Seal says cv=fail`);
  for (const set of sets) {
    const expected = set.instance === 1 ? 'none' : 'pass';
    if (set.seal.cv !== expected) return broken(`i=${set.instance}: ARC-Seal has cv=${set.seal.cv}, expected cv=${expected}`);
  }
  return { kind: 'sets', sets };
}

type SealParse = { readonly ok: true; readonly seal: ArcSeal } | { readonly ok: false; readonly tag: string | null; readonly message: string };

/** RFC 8617 §4.1.3: i, cv, a, b, d, s (t optional); no h=, and no other canonicalization than relaxed. */
export function parseSeal(field: HeaderField): SealParse {
  const value = fieldValue(field);
  const parsed = parseTagList(value);
  if (!parsed.ok) return { ok: false, tag: parsed.tag, message: parsed.message };
  const tags = parsed.tags;
  const get = (name: string): string | undefined => (tags.has(name) ? stripFws(tags.get(name)!.value) : undefined);
  const bad = (tag: string | null, message: string): SealParse => ({ ok: false, tag, message });
  for (const required of ['i', 'cv', 'a', 'b', 'd', 's']) if (!tags.has(required)) return bad(required, `required tag "${required}" is missing`);
  if (tags.has('h')) return bad('h', 'an ARC-Seal must not have h= (it signs the ARC sets, not chosen fields)');
  const c = get('c');
  if (c !== undefined && asciiLower(c) !== 'relaxed' && asciiLower(c) !== 'relaxed/relaxed') return bad('c', `an ARC-Seal is relaxed only, not "${c}"`);
  const instance = parseInstance(get('i')!);
  if (instance === null) return bad('i', `"${get('i')}" is not an ARC instance (1 to ${MAX_ARC_INSTANCE})`);
  const cv = asciiLower(get('cv')!);
  if (cv !== 'none' && cv !== 'pass' && cv !== 'fail') return bad('cv', `"${get('cv')}" is not none, pass or fail`);
  const a = asciiLower(get('a')!);
  if (!(SIGNING_ALGORITHMS as readonly string[]).includes(a)) return bad('a', `unsupported algorithm "${get('a')}"`);
  const algorithm = a as SigningAlgorithm;
  const bText = get('b')!;
  if (bText === '' || !/^[A-Za-z0-9+/]*={0,2}$/.test(bText)) return bad('b', 'signature data is empty or not base64');
  const d = asciiLower(get('d')!).replace(/\.$/, '');
  if (!isDomainName(d)) return bad('d', `"${get('d')}" is not a domain name`);
  const s = get('s')!;
  if (!/^[A-Za-z0-9_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)*$/.test(s) || !fitsDns(`${s}._domainkey.${d}`)) return bad('s', `"${s}" is not a selector`);
  const tText = get('t');
  if (tText !== undefined && !/^[0-9]{1,12}$/.test(tText)) return bad('t', `"${tText}" is not a timestamp`);
  const colon = field.raw.indexOf(':');
  const parts = algorithmParts(algorithm);
  return {
    ok: true,
    seal: {
      field,
      instance,
      cv,
      algorithm,
      keyType: parts.keyType,
      hash: parts.hash,
      d,
      s,
      t: tText === undefined ? undefined : Number(tText),
      b: Buffer.from(bText, 'base64'),
      bText,
      strippedRaw: `${field.raw.slice(0, colon + 1)}${stripTagValue(value, tags.get('b')!)}\r\n`,
    },
  };
}
