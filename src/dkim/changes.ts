/**
 * What happened to a message between the signer and the verifier, told from
 * the message as it was sent (`dkim-proxy explain --original`): the
 * difference between the two in what the signature covers, in canonical
 * form (what the verifier hashed), sorted into the transformations that
 * break DKIM in practice. A Received field added on the way is no change (it
 * is not signed); nor is a refold that relaxed canonicalization undoes. Pure.
 */
import { isAscii } from 'node:buffer';
import { canonicalBody } from './bodyhash.js';
import { canonicalizeHeader, type Canon } from './canonicalize.js';
import { selectHeaders, type HeaderField } from './headers.js';
import type { DkimSignature } from './signature.js';

export const CHANGE_KINDS = [
  '8bit-reencoded',
  'line-wrapped',
  'whitespace-changed',
  'header-refolded',
  'header-modified',
  'header-added',
  'header-removed',
  'body-appended',
  'body-truncated',
  'line-endings',
  'body-modified',
] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

export interface Change {
  readonly kind: ChangeKind;
  /** A header field's name, or `body line N` (of the canonical body as it was signed). */
  readonly where: string;
  /** What the verifier saw, signed and now: canonical forms (UTF-8 where the octets are), long lines cut short. */
  readonly signed: string | null;
  readonly now: string | null;
  readonly fix: string;
}

export const CHANGE_FIX: Record<ChangeKind, string> = {
  '8bit-reencoded': 'A hop without 8BITMIME re-encoded the 8-bit body (quoted-printable or base64): sign with [out] transport_encoding = "7bit", so that nothing is left to convert.',
  'line-wrapped': 'A hop broke lines over 998 octets (RFC 5322 limit): transport_encoding = "7bit" encodes such lines before signing.',
  'whitespace-changed': 'A hop changed spaces or trailing blank lines: relaxed canonicalization (c=relaxed/relaxed) ignores both.',
  'header-refolded': 'A hop refolded a signed header field: relaxed header canonicalization ignores folding.',
  'header-modified': 'A hop rewrote a signed header field (a list tagging the Subject, a gateway rewriting From): sign after that hop, or have it stop.',
  'header-added': 'A field was added where the signature had guarded its absence (over-signing): that is what over-signing is for; a list that adds it should re-sign or ARC-seal.',
  'header-removed': 'A hop removed a signed header field: have it stop, or sign after it.',
  'body-appended': 'Text was appended to the body (a list footer): a list should ARC-seal what it forwards; l= would have covered it, at the price of letting anyone append.',
  'body-truncated': 'The body arrived shorter than it was signed: a hop cut it, or the copy compared is not the one that was sent.',
  'line-endings': 'Line ends were rewritten (a bare CR or LF made a CRLF, or the reverse): send CRLF only; transport_encoding = "7bit" encodes lone CR and LF.',
  'body-modified': 'The body was changed in a way none of the known transformations explains: compare the lines shown, and sign after the hop that changes them.',
};

const SHOWN = 160;
/** Octets (a binary string) as text to show: UTF-8 when they are UTF-8, else one character per octet; long ones cut. */
function shown(octets: string): string {
  const bytes = Buffer.from(octets, 'latin1');
  const utf8 = bytes.toString('utf8');
  const text = Buffer.from(utf8, 'utf8').equals(bytes) ? utf8 : octets;
  return text.length > SHOWN ? `${text.slice(0, SHOWN)}... (${bytes.length} octets)` : text;
}

/** The canonical body (RFC 6376 §3.4.3, §3.4.4) as a binary string, for comparing: the octets the body hash covers. */
export function canonicalBodyText(body: Buffer, canon: Canon): string {
  return canonicalBody(body, canon).toString('latin1');
}

function change(kind: ChangeKind, where: string, signed: string | null, now: string | null): Change {
  return { kind, where, signed: signed === null ? null : shown(signed), now: now === null ? null : shown(now), fix: CHANGE_FIX[kind] };
}

const unfold = (raw: string): string => raw.replace(/\r\n(?=[ \t])/g, '');
const nameOf = (f: HeaderField): string => f.raw.slice(0, f.raw.indexOf(':')).trim();

function headerChanges(sig: DkimSignature, before: readonly HeaderField[], after: readonly HeaderField[]): Change[] {
  const names = sig.h.filter((n) => n.toLowerCase() !== 'dkim-signature');
  const then = selectHeaders(before, names);
  const now = selectHeaders(after, names);
  const canon = sig.canonicalization.header;
  const out: Change[] = [];
  for (const [k, name] of names.entries()) {
    const b = then[k] ?? null;
    const a = now[k] ?? null;
    if (b === null && a === null) continue;
    const strip = (f: HeaderField): string => canonicalizeHeader(f.raw, canon).replace(/\r\n$/, '');
    if (b === null) {
      out.push(change('header-added', nameOf(a!), null, strip(a!)));
      continue;
    }
    if (a === null) {
      out.push(change('header-removed', nameOf(b), strip(b), null));
      continue;
    }
    if (strip(a) === strip(b)) continue;
    const kind: ChangeKind = unfold(a.raw) === unfold(b.raw) ? 'header-refolded' : canonicalizeHeader(a.raw, 'relaxed') === canonicalizeHeader(b.raw, 'relaxed') ? 'whitespace-changed' : 'header-modified';
    out.push(change(kind, nameOf(b), strip(b), strip(a)));
  }
  return out;
}

/** The 1-based line of `text` at which `a` and `b` first differ, with the two lines. */
function firstDifference(a: string, b: string): { line: number; signed: string; now: string } {
  const la = a.split('\r\n');
  const lb = b.split('\r\n');
  let k = 0;
  while (k < la.length && k < lb.length && la[k] === lb[k]) k++;
  return { line: k + 1, signed: la[k] ?? '(end of body)', now: lb[k] ?? '(end of body)' };
}

const lineCount = (text: string): number => (text.length === 0 ? 0 : text.split('\r\n').length - 1);

function bodyChange(sig: DkimSignature, before: Buffer, after: Buffer): Change | undefined {
  const canon = sig.canonicalization.body;
  const wholeBefore = canonicalBodyText(before, canon);
  // What the signature covers: l= octets of the canonical body, when it has l=.
  const signed = sig.l === undefined ? wholeBefore : wholeBefore.slice(0, sig.l);
  const now = canonicalBodyText(after, canon);
  if (now === wholeBefore) return undefined;
  if (now.startsWith(signed) && now.length > signed.length) {
    const line = lineCount(signed) + 1;
    const covered = sig.l !== undefined ? ` (l=${sig.l} covers the signed part: the signature still verifies)` : '';
    return change('body-appended', `body line ${line}${covered}`, null, now.slice(signed.length));
  }
  if (signed.startsWith(now)) return change('body-truncated', `body line ${lineCount(now) + 1}`, signed.slice(now.length), null);
  const d = firstDifference(signed, now);
  const where = `body line ${d.line}`;
  // 8-bit octets gone, or more parts in quoted-printable or base64 than were sent: a downgrade.
  const encoded = (b: Buffer): number => (b.toString('latin1').match(/^content-transfer-encoding:[ \t]*(quoted-printable|base64)/gim) ?? []).length;
  if (!isAscii(before) && (isAscii(after) || encoded(after) > encoded(before))) return change('8bit-reencoded', where, d.signed, d.now);
  const ends = (s: string): string => s.replace(/\r\n|\r|\n/g, '\n');
  if (ends(signed) === ends(now)) return change('line-endings', where, d.signed, d.now);
  const longLine = signed.split('\r\n').some((l) => l.length > 998);
  const joined = (s: string): string => s.replace(/\r\n[ \t]?/g, '');
  if (longLine && joined(signed) === joined(now)) return change('line-wrapped', where, d.signed, d.now);
  const squeezed = (s: string): string => s.replace(/[ \t]+/g, '').replace(/(\r\n)+/g, '\r\n');
  if (squeezed(signed) === squeezed(now)) return change('whitespace-changed', where, d.signed, d.now);
  return change('body-modified', where, d.signed, d.now);
}

/** Every change in what `sig` signed, from the message as sent (`before`) to the message as it came (`after`). */
export function signedChanges(sig: DkimSignature, before: { readonly fields: readonly HeaderField[]; readonly body: Buffer }, after: { readonly fields: readonly HeaderField[]; readonly body: Buffer }): Change[] {
  const body = bodyChange(sig, before.body, after.body);
  return [...(body ? [body] : []), ...headerChanges(sig, before.fields, after.fields)];
}
