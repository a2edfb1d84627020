/**
 * Verification (RFC 6376 §6): every DKIM-Signature evaluated on its own, up to
 * a cap, each with a typed outcome. Pure: key records and the time come in as
 * arguments, so DNS lives with the caller.
 */
import { BodyHashSet, type BodyHashResult, type HashAlgorithm } from './bodyhash.js';
import { rsaPaddingValid, verifyHeaderData } from './crypto.js';
import { findBodyStart, parseHeaderBlock, selectHeaders, type HeaderField } from './headers.js';
import { parseKeyRecord, type DkimKeyRecord } from './keyrecord.js';
import { MIN_RSA_BITS } from './keys.js';
import type { DkimOutcome } from './results.js';
import { headerHashInput } from './sign.js';
import { isSameOrSubdomain, parseSignature, type DkimSignature, type KeyType, type PartialSignatureInfo, type SignatureParseResult } from './signature.js';

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
  /**
   * Body hashes shared with another check of the same message (ARC's AMS):
   * its owner feeds it, and `update` here then does nothing.
   */
  readonly bodies?: BodyHashSet;
}

export const DEFAULT_MAX_SIGNATURES = 10;

type Entry =
  | { readonly kind: 'parsed'; readonly signature: DkimSignature; readonly hasher: string }
  | { readonly kind: 'outcome'; readonly outcome: DkimOutcome };

export function keyQueryName(sig: { readonly s: string; readonly d: string }): string {
  return `${sig.s}._domainkey.${sig.d}`;
}

export function infoOf(sig: DkimSignature): PartialSignatureInfo {
  return { d: sig.d, s: sig.s, a: sig.algorithm, i: sig.i, bText: sig.bText };
}

export class MessageVerifier {
  private readonly fields: readonly HeaderField[];
  private readonly entries: Entry[] = [];
  private readonly bodies: BodyHashSet;
  private readonly ownsBodies: boolean;
  private readonly options: VerifyOptions;
  /** Signatures beyond `maxSignatures`: not checked, no outcome of their own. */
  readonly skipped: number;

  /** `headerBlock`: the binary string, or its fields if the caller has parsed them already. */
  constructor(headerBlock: string | readonly HeaderField[], options: VerifyOptions = {}) {
    this.options = options;
    this.bodies = options.bodies ?? new BodyHashSet();
    this.ownsBodies = options.bodies === undefined;
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
      if (!parsed.ok) {
        this.entries.push({ kind: 'outcome', outcome: syntaxOutcome(parsed) });
        continue;
      }
      const sig = parsed.signature;
      if (sig.algorithm === 'rsa-sha1' && !options.allowSha1) {
        this.entries.push({ kind: 'outcome', outcome: sha1Outcome(sig) });
        continue;
      }
      this.entries.push({ kind: 'parsed', signature: sig, hasher: this.bodies.want(sig.canonicalization.body, sig.hash, sig.l) });
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
    if (this.ownsBodies) this.bodies.update(chunk);
  }

  /** One outcome per DKIM-Signature, top to bottom; empty when unsigned. */
  finish(keys: ReadonlyMap<string, KeyAnswer>, now: number): DkimOutcome[] {
    return this.entries.map((e) => {
      if (e.kind === 'outcome') return e.outcome;
      const answer = keys.get(keyQueryName(e.signature)) ?? NO_LOOKUP;
      return checkSignature(this.fields, e.signature, answer, this.bodies.result(e.hasher), now, this.options);
    });
  }
}

/** The answer for a key that was never asked for (a caller's bug, not DNS's). */
export const NO_LOOKUP: KeyAnswer = { kind: 'temperror', reason: 'dns error', detail: 'no lookup was made' };

/** The outcome of a signature field that does not parse. */
export function syntaxOutcome(parsed: Extract<SignatureParseResult, { ok: false }>): DkimOutcome {
  const detail = parsed.tag ? `${parsed.tag}=: ${parsed.message}` : parsed.message;
  return { result: 'permerror', reason: 'signature syntax', sig: parsed.info, detail };
}

export function sha1Outcome(sig: DkimSignature): DkimOutcome {
  return { result: 'policy', reason: 'rsa-sha1 is not accepted (RFC 8301)', sig: infoOf(sig), testing: false };
}

/** What a signature needs of its key record: the key type and hash, and the domains for `t=s`. */
export interface KeyUse {
  readonly algorithm: string;
  readonly keyType: KeyType;
  readonly hash: HashAlgorithm;
  readonly d: string;
  readonly iDomain: string;
}

/** The key records at a signature's name that may check it, or the outcome that says why none can. */
export function usableKeys(use: KeyUse, answer: KeyAnswer, info: PartialSignatureInfo, name: string): { readonly keys: readonly DkimKeyRecord[] } | { readonly outcome: DkimOutcome } {
  if (answer.kind === 'temperror') return { outcome: { result: 'temperror', reason: answer.reason, sig: info, ...(answer.detail ? { detail: answer.detail } : {}) } };
  if (answer.kind === 'nxdomain' || answer.records.length === 0) {
    return { outcome: { result: 'permerror', reason: 'no key', sig: info, detail: `no key record at ${name}` } };
  }
  // Every TXT record at the name is tried (key rotation, DKIM-PITFALLS 18).
  const records: DkimKeyRecord[] = [];
  let syntaxError = '';
  for (const txt of answer.records) {
    const r = parseKeyRecord(txt);
    if (r.ok) records.push(r.record);
    else syntaxError ||= r.tag ? `${r.tag}=: ${r.message}` : r.message;
  }
  if (records.length === 0) return { outcome: { result: 'permerror', reason: 'key syntax', sig: info, detail: syntaxError } };
  const live = records.filter((r) => r.publicKey !== null);
  if (live.length === 0) return { outcome: { result: 'permerror', reason: 'key revoked', sig: info } };
  let misfit = '';
  const usable = live.filter((r) => {
    const why = keyMisfit(use, r);
    if (why !== null) misfit ||= why;
    return why === null;
  });
  if (usable.length === 0) return { outcome: { result: 'permerror', reason: 'key does not fit the signature', sig: info, detail: misfit } };
  return { keys: usable };
}

/**
 * The header-hash check against the usable keys, then RFC 8301's key size:
 * the last step every signature of ours (DKIM, AMS, AS) takes.
 */
export function checkHeaderSignature(
  use: KeyUse,
  usable: readonly DkimKeyRecord[],
  data: Buffer,
  b: Buffer,
  info: PartialSignatureInfo,
  options: Pick<VerifyOptions, 'allowShortKeys'>,
  unsigned: { readonly unsignedBodyBytes?: number } = {},
): DkimOutcome {
  const good = usable.find((r) => verifyHeaderData(use.keyType, use.hash, r.publicKey!, data, b));
  if (good === undefined) {
    const keyMatches = use.keyType === 'rsa' ? usable.some((r) => rsaPaddingValid(r.publicKey!, b)) : undefined;
    return { result: 'fail', reason: 'signature did not verify', sig: info, testing: usable.some((r) => r.testing), ...(keyMatches !== undefined ? { keyMatches } : {}), ...unsigned };
  }
  if (good.keyType === 'rsa' && (good.bits ?? 0) < MIN_RSA_BITS && !options.allowShortKeys) {
    return { result: 'policy', reason: 'RSA key shorter than 1024 bits (RFC 8301)', sig: info, testing: good.testing, detail: `${good.bits} bits`, ...unsigned };
  }
  return Object.assign({ result: 'pass' as const, sig: info, testing: good.testing }, unsigned);
}

/**
 * RFC 6376 §6.1 for one parsed signature (a DKIM-Signature or an
 * ARC-Message-Signature) over the message's fields and body hash.
 */
export function checkSignature(
  fields: readonly HeaderField[],
  sig: DkimSignature,
  answer: KeyAnswer,
  body: BodyHashResult,
  now: number,
  options: VerifyOptions,
): DkimOutcome {
  const info = infoOf(sig);
  const skew = options.clockSkew ?? 300;
  if (sig.x !== undefined && sig.x + skew < now) {
    return { result: 'permerror', reason: 'signature expired', sig: info, detail: `x=${sig.x}` };
  }
  const keys = usableKeys(sig, answer, info, keyQueryName(sig));
  if ('outcome' in keys) return keys.outcome;
  const usable = keys.keys;

  if (sig.l !== undefined && sig.l > body.canonicalLength) {
    return { result: 'fail', reason: 'l= exceeds the body length', sig: info, testing: usable.some((r) => r.testing), detail: `l=${sig.l}, body has ${body.canonicalLength}` };
  }
  const unsigned = sig.l === undefined ? {} : { unsignedBodyBytes: body.canonicalLength - sig.l };
  if (!body.hash.equals(sig.bh)) {
    return { result: 'fail', reason: 'body hash did not verify', sig: info, testing: usable.some((r) => r.testing), ...unsigned };
  }
  const data = headerHashInput(selectHeaders(fields, sig.h), sig.strippedRaw, sig.canonicalization.header);
  return checkHeaderSignature(sig, usable, data, sig.b, info, options, unsigned);
}

/** RFC 6376 §6.1.2 checks of a key record against the signature; null when it fits. */
function keyMisfit(sig: KeyUse, r: DkimKeyRecord): string | null {
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
