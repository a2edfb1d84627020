/**
 * Why each signature of a message passed or not (`dkim-proxy explain`): the
 * engine's own check, then a cause word, the detail a postmaster needs (the
 * body hashes, the l= coverage, the signed header fields as the verifier saw
 * them, z= copies that differ) and the fix. Pure: keys and time come in.
 */
import * as libqp from 'libqp';
import { hashBody } from './bodyhash.js';
import { canonicalizeHeader, relaxedHeader } from './canonicalize.js';
import { causeOf, FIX, type Cause } from './cause.js';
import { signedChanges, type Change } from './changes.js';
import { findBodyStart, parseHeaderBlock, selectHeaders } from './headers.js';
import { viewOutcome, type DkimResult } from './results.js';
import { parseSignature } from './signature.js';
import { checkSignature, keyQueryName, sha1Outcome, syntaxOutcome, type KeyAnswer } from './verify.js';

export interface Explanation {
  readonly index: number;
  readonly d: string | null;
  readonly s: string | null;
  readonly a: string | null;
  readonly result: DkimResult;
  readonly cause: Cause;
  readonly reason: string | null;
  readonly fix: string;
  readonly detail: {
    /** What decided: the body hash, the header signature, the key record, the signature field. */
    readonly check: string;
    readonly expectedBodyHash: string | null;
    readonly computedBodyHash: string | null;
    /** With l=: how much of the canonical body it covers. */
    readonly bodyLength: { readonly signed: number; readonly total: number } | null;
    /** The signed header fields in the canonical form the verifier hashed (`(absent)` for a name listed but not present). */
    readonly signedHeaders: readonly string[];
    /** z= copies whose field now differs: name, the copy, the field as it is. */
    readonly changedCopies: readonly { readonly name: string; readonly signed: string; readonly now: string }[];
    readonly text: string | null;
  };
  /** With the message as it was sent: what changed in what this signature covers; null without it. */
  readonly changes: readonly Change[] | null;
}

/** At most this many signatures are explained (a message can carry thousands). */
const MAX = 50;
/** Seconds of clock drift allowed for t= in the future. */
const SKEW = 300;

/** z= values are DKIM-Quoted-Printable (RFC 6376 §2.11): =XX octets, whitespace already removed. */
const decodeQp = (s: string): string => libqp.decode(s).toString('latin1');

function split(message: Buffer): { fields: ReturnType<typeof parseHeaderBlock>; body: Buffer } {
  const { headerEnd, bodyStart } = findBodyStart(message);
  return { fields: parseHeaderBlock(message.toString('latin1', 0, headerEnd)), body: message.subarray(bodyStart) };
}

/** `original`: the message as it was sent (CRLF line ends), to say what changed since. */
export async function explainMessage(message: Buffer, lookup: (name: string) => Promise<KeyAnswer>, now: number, original?: Buffer): Promise<Explanation[]> {
  const { fields, body } = split(message);
  const sent = original === undefined ? undefined : split(original);
  const out: Explanation[] = [];
  const signatures = fields.filter((f) => f.key === 'dkim-signature').slice(0, MAX);
  for (const [index, field] of signatures.entries()) {
    const parsed = parseSignature(field);
    if (!parsed.ok) {
      const o = syntaxOutcome(parsed);
      const cause = causeOf(o);
      out.push({
        index,
        d: parsed.info.d ?? null,
        s: parsed.info.s ?? null,
        a: parsed.info.a ?? null,
        result: o.result,
        cause,
        reason: viewOutcome(o).detail ?? null,
        fix: FIX[cause],
        detail: { check: 'the DKIM-Signature field', expectedBodyHash: null, computedBodyHash: null, bodyLength: null, signedHeaders: [], changedCopies: [], text: viewOutcome(o).detail ?? null },
        changes: null,
      });
      continue;
    }
    const sig = parsed.signature;
    const hashed = hashBody(body, sig.canonicalization.body, sig.hash, sig.l);
    const o = sig.algorithm === 'rsa-sha1' ? sha1Outcome(sig) : checkSignature(fields, sig, await lookup(keyQueryName(sig)), hashed, now, {});
    let cause = causeOf(o);
    if (cause === 'ok' && sig.t !== undefined && sig.t > now + SKEW) cause = 'future';
    const selected = selectHeaders(fields, sig.h);
    const signedHeaders = selected.map((f, k) => (f === null ? `${sig.h[k]!.toLowerCase()}: (absent)` : canonicalizeHeader(f.raw, sig.canonicalization.header).replace(/\r\n$/, '')));
    const changedCopies: { name: string; signed: string; now: string }[] = [];
    if (sig.z !== undefined) {
      const copies = sig.z.replace(/[ \t\r\n]+/g, '').split('|');
      const used = new Map<string, number>();
      for (const copy of copies) {
        const colon = copy.indexOf(':');
        if (colon <= 0) continue;
        const name = copy.slice(0, colon);
        const value = decodeQp(copy.slice(colon + 1));
        const n = used.get(name.toLowerCase()) ?? 0;
        used.set(name.toLowerCase(), n + 1);
        const current = selectHeaders(fields, Array.from({ length: n + 1 }, () => name))[n] ?? null;
        const signed = relaxedHeader(`${name}:${value}\r\n`).replace(/\r\n$/, '');
        const nowText = current === null ? '(absent)' : relaxedHeader(current.raw).replace(/\r\n$/, '');
        if (signed !== nowText) changedCopies.push({ name, signed, now: nowText });
      }
    }
    const v = viewOutcome(o);
    const check =
      cause === 'body-changed' ? 'the body hash (bh=)' : cause === 'header-changed' || cause === 'key-mismatch' ? 'the header signature (b=)' : cause.startsWith('key') || cause === 'dns-temporary' || cause === 'weak-key' ? 'the key record' : cause === 'ok' || cause === 'future' ? 'everything' : 'the signature field';
    out.push({
      index,
      d: sig.d,
      s: sig.s,
      a: sig.algorithm,
      result: v.result,
      cause,
      reason: v.reason ?? null,
      fix: FIX[cause],
      detail: {
        check,
        expectedBodyHash: sig.bh.toString('base64'),
        computedBodyHash: hashed.hash.toString('base64'),
        bodyLength: sig.l === undefined ? null : { signed: sig.l, total: hashed.canonicalLength },
        signedHeaders,
        changedCopies,
        text: v.detail ?? null,
      },
      changes: sent === undefined ? null : signedChanges(sig, sent, { fields, body }),
    });
  }
  return out;
}
