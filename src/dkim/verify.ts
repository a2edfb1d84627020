/**
 * Verification (RFC 6376 §6): every DKIM-Signature evaluated on its own, up to
 * a cap, each with a typed outcome. Pure: key records and the time come in as
 * arguments, so DNS lives with the caller.
 */
import { createBodyHasher, type BodyHasher, type BodyHashResult } from './bodyhash.js';
import { verifyHeaderData } from './crypto.js';
import { findBodyStart, parseHeaderBlock, selectHeaders, type HeaderField } from './headers.js';
import { parseKeyRecord, type DkimKeyRecord } from './keyrecord.js';
import { MIN_RSA_BITS } from './keys.js';
import type { DkimOutcome } from './results.js';
import { headerHashInput } from './sign.js';
import { isSameOrSubdomain, parseSignature, type DkimSignature, type PartialSignatureInfo, type SignatureParseResult } from './signature.js';

/** What the DNS said for `selector._domainkey.domain`. */
export type KeyAnswer =
  | { readonly kind: 'found'; readonly records: readonly string[] }
  /** NXDOMAIN or no TXT record: permanent (RFC 6376 §6.1.2). */
  | { readonly kind: 'nxdomain' }
  /** Timeout, SERVFAIL, refused: temporary. */
  | { readonly kind: 'temperror'; readonly reason: 'dns timeout' | 'dns error'; readonly detail?: string };

export interface VerifyOptions {
  /**
   * At most this many signatures are checked (DoS bound, DKIM-PITFALLS 28):
   * DNS lookups and signature checks alike. The rest are counted, not listed.
   */
  readonly maxSignatures?: number;
  /** The From domain: signatures whose d= is it, or a parent or subdomain of it, are checked first. */
  readonly authorDomain?: string | undefined;
  /** Legacy switch: accept rsa-sha1 signatures (RFC 8301 says not to). */
  readonly allowSha1?: boolean;
  /** Legacy switch: accept RSA keys shorter than 1024 bits. */
  readonly allowShortKeys?: boolean;
  /** Seconds of clock drift allowed for `x=`. */
  readonly clockSkew?: number;
}

export const DEFAULT_MAX_SIGNATURES = 10;

type Entry =
  | { readonly kind: 'parsed'; readonly signature: DkimSignature; readonly hasher: string }
  | { readonly kind: 'outcome'; readonly outcome: DkimOutcome };

export function keyQueryName(sig: { readonly s: string; readonly d: string }): string {
  return `${sig.s}._domainkey.${sig.d}`;
}

function infoOf(sig: DkimSignature): PartialSignatureInfo {
  return { d: sig.d, s: sig.s, a: sig.algorithm, i: sig.i, bText: sig.bText };
}

export class MessageVerifier {
  private readonly fields: readonly HeaderField[];
  private readonly entries: Entry[] = [];
  private readonly hashers = new Map<string, BodyHasher>();
  private readonly options: VerifyOptions;
  /** Signatures beyond `maxSignatures`: not checked, no outcome of their own. */
  readonly skipped: number;

  /** `headerBlock`: the binary string, or its fields if the caller has parsed them already. */
  constructor(headerBlock: string | readonly HeaderField[], options: VerifyOptions = {}) {
    this.options = options;
    this.fields = typeof headerBlock === 'string' ? parseHeaderBlock(headerBlock) : headerBlock;
    const max = options.maxSignatures ?? DEFAULT_MAX_SIGNATURES;
    const all = this.fields.filter((f) => f.key === 'dkim-signature').map((field) => ({ field, parsed: parseSignature(field) }));
    // One valid author signature below any number of bogus ones is still found.
    const author = options.authorDomain?.toLowerCase();
    const aligned = (p: SignatureParseResult): boolean => author !== undefined && p.ok && (isSameOrSubdomain(author, p.signature.d) || isSameOrSubdomain(p.signature.d, author));
    let chosen = all;
    if (all.length > max) {
      const first = new Set([...all.filter((x) => aligned(x.parsed)), ...all.filter((x) => !aligned(x.parsed))].slice(0, max));
      chosen = all.filter((x) => first.has(x));
    }
    this.skipped = all.length - chosen.length;
    for (const { parsed } of chosen) {
      const info = parsed.ok ? infoOf(parsed.signature) : parsed.info;
      if (!parsed.ok) {
        const detail = parsed.tag ? `${parsed.tag}=: ${parsed.message}` : parsed.message;
        this.entries.push({ kind: 'outcome', outcome: { result: 'permerror', reason: 'signature syntax', sig: info, detail } });
        continue;
      }
      const sig = parsed.signature;
      if (sig.algorithm === 'rsa-sha1' && !options.allowSha1) {
        this.entries.push({ kind: 'outcome', outcome: { result: 'policy', reason: 'rsa-sha1 is not accepted (RFC 8301)', sig: info, testing: false } });
        continue;
      }
      const hasher = `${sig.canonicalization.body}/${sig.hash}/${sig.l ?? ''}`;
      if (!this.hashers.has(hasher)) this.hashers.set(hasher, createBodyHasher(sig.canonicalization.body, sig.hash, sig.l));
      this.entries.push({ kind: 'parsed', signature: sig, hasher });
    }
  }

  /** Whether the message carries any DKIM-Signature at all. */
  get signed(): boolean {
    return this.entries.length > 0;
  }

  /** The DNS names whose TXT records `finish` needs. */
  keyQueries(): string[] {
    const names = new Set<string>();
    for (const e of this.entries) if (e.kind === 'parsed') names.add(keyQueryName(e.signature));
    return [...names];
  }

  update(chunk: Uint8Array): void {
    for (const h of this.hashers.values()) h.update(chunk);
  }

  /** One outcome per DKIM-Signature, top to bottom; empty when unsigned. */
  finish(keys: ReadonlyMap<string, KeyAnswer>, now: number): DkimOutcome[] {
    const bodies = new Map<string, BodyHashResult>();
    for (const [k, h] of this.hashers) bodies.set(k, h.digest());
    return this.entries.map((e) => {
      if (e.kind === 'outcome') return e.outcome;
      const answer = keys.get(keyQueryName(e.signature)) ?? { kind: 'temperror', reason: 'dns error', detail: 'no lookup was made' };
      return this.evaluate(e.signature, answer, bodies.get(e.hasher)!, now);
    });
  }

  private evaluate(sig: DkimSignature, answer: KeyAnswer, body: BodyHashResult, now: number): DkimOutcome {
    const info = infoOf(sig);
    const skew = this.options.clockSkew ?? 300;
    if (sig.x !== undefined && sig.x + skew < now) {
      return { result: 'permerror', reason: 'signature expired', sig: info, detail: `x=${sig.x}` };
    }
    if (answer.kind === 'temperror') return { result: 'temperror', reason: answer.reason, sig: info, ...(answer.detail ? { detail: answer.detail } : {}) };
    if (answer.kind === 'nxdomain' || answer.records.length === 0) {
      return { result: 'permerror', reason: 'no key', sig: info, detail: `no key record at ${keyQueryName(sig)}` };
    }

    // Every TXT record at the name is tried (key rotation, DKIM-PITFALLS 18).
    const records: DkimKeyRecord[] = [];
    let syntaxError = '';
    for (const txt of answer.records) {
      const r = parseKeyRecord(txt);
      if (r.ok) records.push(r.record);
      else syntaxError ||= r.tag ? `${r.tag}=: ${r.message}` : r.message;
    }
    if (records.length === 0) return { result: 'permerror', reason: 'key syntax', sig: info, detail: syntaxError };
    const live = records.filter((r) => r.publicKey !== null);
    if (live.length === 0) return { result: 'permerror', reason: 'key revoked', sig: info };
    let misfit = '';
    const usable = live.filter((r) => {
      const why = keyMisfit(sig, r);
      if (why !== null) misfit ||= why;
      return why === null;
    });
    if (usable.length === 0) return { result: 'permerror', reason: 'key does not fit the signature', sig: info, detail: misfit };

    if (sig.l !== undefined && sig.l > body.canonicalLength) {
      return { result: 'fail', reason: 'l= exceeds the body length', sig: info, testing: usable.some((r) => r.testing), detail: `l=${sig.l}, body has ${body.canonicalLength}` };
    }
    const unsigned = sig.l === undefined ? {} : { unsignedBodyBytes: body.canonicalLength - sig.l };
    if (!body.hash.equals(sig.bh)) {
      return { result: 'fail', reason: 'body hash did not verify', sig: info, testing: usable.some((r) => r.testing), ...unsigned };
    }
    const data = headerHashInput(selectHeaders(this.fields, sig.h), sig.strippedRaw, sig.canonicalization.header);
    const good = usable.find((r) => verifyHeaderData(sig.keyType, sig.hash, r.publicKey!, data, sig.b));
    if (good === undefined) {
      return { result: 'fail', reason: 'signature did not verify', sig: info, testing: usable.some((r) => r.testing), ...unsigned };
    }
    if (good.keyType === 'rsa' && (good.bits ?? 0) < MIN_RSA_BITS && !this.options.allowShortKeys) {
      return { result: 'policy', reason: 'RSA key shorter than 1024 bits (RFC 8301)', sig: info, testing: good.testing, detail: `${good.bits} bits`, ...unsigned };
    }
    return { result: 'pass', sig: info, testing: good.testing, ...unsigned };
  }
}

/** RFC 6376 §6.1.2 checks of a key record against the signature; null when it fits. */
function keyMisfit(sig: DkimSignature, r: DkimKeyRecord): string | null {
  if (r.keyType !== sig.keyType) return `key is k=${r.keyType}, signature is a=${sig.algorithm}`;
  if (r.hashes !== null && !r.hashes.includes(sig.hash)) return `key allows h=${r.hashes.join(':')}, signature uses ${sig.hash}`;
  if (!r.services.includes('*') && !r.services.includes('email')) return `key is for service ${r.services.join(':')}, not email`;
  if (r.strict && sig.iDomain !== sig.d) return `key has t=s, but i= domain ${sig.iDomain} is not ${sig.d}`;
  return null;
}


/** Verifies a whole message held in memory (CRLF line ends), looking keys up with `lookup`. */
export async function verifyMessage(
  message: Buffer,
  lookup: (name: string) => Promise<KeyAnswer>,
  now: number,
  options: VerifyOptions = {},
): Promise<DkimOutcome[]> {
  const { headerEnd, bodyStart } = findBodyStart(message);
  const verifier = new MessageVerifier(message.toString('latin1', 0, headerEnd), options);
  verifier.update(message.subarray(bodyStart));
  const names = verifier.keyQueries();
  const answers = await Promise.all(names.map(async (n) => [n, await lookup(n)] as const));
  return verifier.finish(new Map(answers), now);
}
