/**
 * Verification outcomes, one per signature, in RFC 8601 §2.7.1 words, and the
 * only place that turns them into Authentication-Results text.
 */
import { causeOf } from './cause.js';
import type { PartialSignatureInfo } from './signature.js';

export type DkimResult = 'pass' | 'fail' | 'policy' | 'neutral' | 'temperror' | 'permerror';

export type FailReason = 'body hash did not verify' | 'signature did not verify' | 'l= exceeds the body length';
export type PolicyReason = 'rsa-sha1 is not accepted (RFC 8301)' | 'RSA key shorter than 1024 bits (RFC 8301)';
export type PermerrorReason =
  | 'signature syntax'
  | 'signature expired'
  | 'no key'
  | 'key revoked'
  | 'key syntax'
  | 'key does not fit the signature';
export type TemperrorReason = 'dns timeout' | 'dns error';

interface Base {
  readonly sig: PartialSignatureInfo;
  /** Extra words for people (which tag, what was wrong). */
  readonly detail?: string;
}
interface Signed extends Base {
  /** The key record had `t=y`: RFC 6376 says treat the message as unsigned. */
  readonly testing: boolean;
  /** `l=` was present: how many body octets it left unsigned. */
  readonly unsignedBodyBytes?: number;
}

export type DkimOutcome =
  | (Signed & { readonly result: 'pass' })
  | (Signed & {
      readonly result: 'fail';
      readonly reason: FailReason;
      /**
       * For a header signature that did not verify: whether it is a valid
       * PKCS#1 signature under the published RSA key all the same (the header
       * hash differs) or not (another key signed it); undefined for Ed25519.
       */
      readonly keyMatches?: boolean;
    })
  | (Signed & { readonly result: 'policy'; readonly reason: PolicyReason })
  | (Base & { readonly result: 'temperror'; readonly reason: TemperrorReason })
  | (Base & { readonly result: 'permerror'; readonly reason: PermerrorReason });

export function assertNever(x: never): never {
  throw new Error(`unexpected value ${JSON.stringify(x)}`);
}

/**
 * What every renderer (the A-R writer, the commands, the log) reads of an
 * outcome; the only place that looks inside the union.
 */
export interface OutcomeView {
  readonly result: DkimResult;
  readonly reason: string | undefined;
  readonly detail: string | undefined;
  /** The key record had `t=y`: the message counts as unsigned (RFC 6376 §3.6.1). */
  readonly testing: boolean;
  readonly unsignedBodyBytes: number | undefined;
  /** Whether trying again later may give another answer (a DNS failure). */
  readonly temporary: boolean;
  readonly sig: PartialSignatureInfo;
}

export function viewOutcome(o: DkimOutcome): OutcomeView {
  switch (o.result) {
    case 'pass':
      return { result: o.result, reason: undefined, detail: o.detail, testing: o.testing, unsignedBodyBytes: o.unsignedBodyBytes, temporary: false, sig: o.sig };
    case 'fail':
    case 'policy':
      return { result: o.result, reason: o.reason, detail: o.detail, testing: o.testing, unsignedBodyBytes: o.unsignedBodyBytes, temporary: false, sig: o.sig };
    case 'temperror':
      return { result: o.result, reason: o.reason, detail: o.detail, testing: false, unsignedBodyBytes: undefined, temporary: true, sig: o.sig };
    case 'permerror':
      return { result: o.result, reason: o.reason, detail: o.detail, testing: false, unsignedBodyBytes: undefined, temporary: false, sig: o.sig };
    default:
      return assertNever(o);
  }
}

/** The fields of an outcome in the per-message log line and in `verify --json`. */
export function outcomeFields(o: DkimOutcome): { result: DkimResult; d: string | null; s: string | null; a: string | null; reason: string | null; detail: string | null; testing: boolean } {
  const v = viewOutcome(o);
  return { result: v.result, d: v.sig.d ?? null, s: v.sig.s ?? null, a: v.sig.a ?? null, reason: v.reason ?? null, detail: v.detail ?? null, testing: v.testing };
}

/** RFC 2045 token characters; anything else must be a quoted-string. */
const TOKEN = /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$/;

export function pvalue(v: string): string {
  return TOKEN.test(v) ? v : `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** RFC 6008 §4: at least 8 characters of `b=`, more where needed to tell signatures apart. */
export function shortB(b: string, all: readonly string[]): string {
  let n = Math.min(8, b.length);
  while (n < b.length && all.some((other) => other !== b && other.startsWith(b.slice(0, n)))) n++;
  return b.slice(0, n);
}

/** One `dkim=` method result, without the leading separator. */
export function formatResinfo(o: DkimOutcome, allB: readonly string[]): string {
  const v = viewOutcome(o);
  let out = `dkim=${v.result}`;
  // The cause word (cause.ts) first, where a postmaster's search finds it: dkim=fail (body-changed).
  const cause = causeOf(o);
  if (cause !== 'ok') out += ` (${cause})`;
  if (v.reason !== undefined) out += ` reason=${pvalue(v.detail ? `${v.reason}: ${v.detail}` : v.reason)}`;
  const comments: string[] = [];
  if (v.testing) comments.push('key in testing mode (t=y)');
  if (v.unsignedBodyBytes !== undefined) comments.push(`l= leaves ${v.unsignedBodyBytes} body octets unsigned`);
  if (comments.length > 0) out += ` (${comments.join('; ')})`;
  const s = v.sig;
  if (s.d !== undefined) out += ` header.d=${pvalue(s.d)}`;
  if (s.i !== undefined) out += ` header.i=${identity(s.i)}`;
  if (s.s !== undefined) out += ` header.s=${pvalue(s.s)}`;
  if (s.a !== undefined) out += ` header.a=${pvalue(s.a)}`;
  if (s.bText !== undefined && s.bText !== '') out += ` header.b=${pvalue(shortB(s.bText, allB))}`;
  return out;
}

/** `header.i` is `[local-part] "@" domain` (RFC 8601 §2.2 pvalue); quote a local part that needs it. */
export function identity(i: string): string {
  const at = i.lastIndexOf('@');
  const local = i.slice(0, at);
  const domain = i.slice(at + 1);
  if (at === -1 || !/^[A-Za-z0-9.-]*$/.test(domain)) return pvalue(i);
  if (local === '' || /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+$/.test(local)) return `${local}@${domain}`;
  return `"${local.replace(/["\\]/g, (c) => `\\${c}`)}"@${domain}`;
}

/** A comment's text (RFC 5322 ctext): no parentheses, backslashes or line ends, so it cannot end early. */
export function commentText(text: string): string {
  return text.replace(/[()\\]/g, '').replace(/[\r\n\t]+/g, ' ').replace(/[^\x20-\x7e]/g, '?');
}

/** The `dkim=` results of one message: one per checked signature, `dkim=none` for none. */
export function dkimResinfos(outcomes: readonly DkimOutcome[]): string[] {
  const allB = outcomes.map((o) => o.sig.bText ?? '').filter((b) => b !== '');
  return outcomes.length === 0 ? ['dkim=none'] : outcomes.map((o) => formatResinfo(o, allB));
}

/**
 * The whole Authentication-Results field (with CRLF) from method results.
 * `note` goes in a comment after the authserv-id (e.g. signatures not checked).
 */
export function formatAuthenticationResultsField(authservId: string, resinfos: readonly string[], note?: string): string {
  const comment = note === undefined ? '' : ` (${commentText(note)})`;
  return `Authentication-Results: ${authservId}${comment};${resinfos.map((r) => `\r\n\t${r}`).join(';')}\r\n`;
}

/**
 * The field for DKIM results alone. No outcomes means the message carried no
 * signature: `dkim=none`. `skipped`: signatures past the limit, not checked.
 */
export function formatAuthenticationResults(authservId: string, outcomes: readonly DkimOutcome[], skipped = 0): string {
  return formatAuthenticationResultsField(authservId, dkimResinfos(outcomes), skippedNote(skipped));
}

/** The comment for signatures past the limit, which get no result of their own. */
export function skippedNote(skipped: number): string | undefined {
  return skipped > 0 ? `${skipped} more DKIM signature${skipped === 1 ? '' : 's'} not checked` : undefined;
}
