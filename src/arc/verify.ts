/**
 * ARC chain validation (RFC 8617 §5.2) on the DKIM engine: the newest
 * ARC-Message-Signature is a DKIM signature check, each ARC-Seal a header
 * signature over the sets at and below it, with the same key records, RFC
 * 8301 rules and limits. Pure: keys and the time come in as arguments.
 */
import { BodyHashSet } from '../dkim/bodyhash.js';
import { canonicalizeHeader } from '../dkim/canonicalize.js';
import { findBodyStart, parseHeaderBlock, type HeaderField } from '../dkim/headers.js';
import { viewOutcome, type DkimOutcome } from '../dkim/results.js';
import {

  checkHeaderSignature,
  checkSignature,
  DEFAULT_MAX_SIGNATURES,
  keyQueryName,
  NO_LOOKUP,
  sha1Outcome,
  usableKeys,
  type KeyAnswer,
  type VerifyOptions,
} from '../dkim/verify.js';
import type { ParsedResults } from '../authres/parse.js';
import { readChain, type ArcChain, type ArcSeal, type ArcSet, type ChainValidation } from './chain.js';

export interface ArcOutcome {
  readonly result: ChainValidation;
  /** The newest instance (N); 0 when there is no chain. */
  readonly instance: number;
  /** The oldest instance whose AMS still verifies, newest down without a gap (pass only). */
  readonly oldestPass: number | undefined;
  readonly reason: string;
  /** The newest seal's signer, when the chain is readable. */
  readonly sealer: { readonly d: string; readonly s: string } | undefined;
  /** What the newest sealer recorded (its AAR), when the chain passed. */
  readonly sealerResults: ParsedResults | undefined;
  /** A DNS failure decided the fail: trying again may pass. */
  readonly temporary: boolean;
}

export const NO_CHAIN: ArcOutcome = Object.freeze({
  result: 'none',
  instance: 0,
  oldestPass: undefined,
  reason: 'the message has no ARC sets',
  sealer: undefined,
  sealerResults: undefined,
  temporary: false,
});

/** The raw fields of one ARC set; the seal's `b=` empty for the set being signed or checked. */
export interface SetText {
  readonly aar: string;
  readonly ams: string;
  readonly seal: string;
}

/**
 * RFC 8617 §5.1.1: the sets below in order, then this one, each AAR, AMS, AS
 * in relaxed canonicalization; this set's AS has an empty `b=` and no final
 * CRLF.
 */
export function sealHashInput(below: readonly SetText[], own: SetText): Buffer {
  let data = '';
  for (const s of below) data += canonicalizeHeader(s.aar, 'relaxed') + canonicalizeHeader(s.ams, 'relaxed') + canonicalizeHeader(s.seal, 'relaxed');
  data += canonicalizeHeader(own.aar, 'relaxed') + canonicalizeHeader(own.ams, 'relaxed') + canonicalizeHeader(own.seal, 'relaxed').replace(/\r\n$/, '');
  return Buffer.from(data, 'latin1');
}

function sealData(sets: readonly ArcSet[], k: number): Buffer {
  const text = (set: ArcSet, seal: string): SetText => ({ aar: set.aar.raw, ams: set.ams.field.raw, seal });
  const own = sets[k - 1]!;
  return sealHashInput(sets.slice(0, k - 1).map((set) => text(set, set.seal.field.raw)), text(own, own.seal.strippedRaw));
}

export class ArcVerifier {
  private readonly fields: readonly HeaderField[];
  private readonly chain: ArcChain;
  private readonly options: VerifyOptions;
  private readonly bodies: BodyHashSet;
  private readonly ownsBodies: boolean;
  /** Body-hash keys of the AMSes that will be checked, newest first. */
  private readonly amsHashers: string[] = [];

  constructor(fields: readonly HeaderField[], options: VerifyOptions = {}) {
    this.fields = fields;
    this.options = options;
    this.bodies = options.bodies ?? new BodyHashSet();
    this.ownsBodies = options.bodies === undefined;
    this.chain = limitKeys(readChain(fields), options.maxSignatures ?? DEFAULT_MAX_SIGNATURES);
    for (const set of this.checkedAms()) this.amsHashers.push(this.bodies.want(set.ams.canonicalization.body, set.ams.hash, set.ams.l));
  }

  /**
   * The AMSes checked: the newest, which decides, and older ones for
   * oldest-pass, as many as the signature limit allows (a hostile chain of 50
   * sets with 50 keys must not cost 100 lookups).
   */
  private checkedAms(): ArcSet[] {
    if (this.chain.kind !== 'sets') return [];
    const max = Math.max(1, this.options.maxSignatures ?? DEFAULT_MAX_SIGNATURES);
    return [...this.chain.sets].reverse().slice(0, max);
  }

  keyQueries(): string[] {
    if (this.chain.kind !== 'sets') return [];
    const names = new Set<string>();
    for (const set of this.chain.sets) names.add(keyQueryName(set.seal));
    for (const set of this.checkedAms()) names.add(keyQueryName(set.ams));
    return [...names];
  }

  update(chunk: Uint8Array): void {
    if (this.ownsBodies) this.bodies.update(chunk);
  }

  finish(keys: ReadonlyMap<string, KeyAnswer>, now: number): ArcOutcome {
    const chain = this.chain;
    if (chain.kind === 'none') return NO_CHAIN;
    if (chain.kind === 'broken') return failed(chain.instance, chain.reason, undefined, false);
    const sets = chain.sets;
    const n = sets.length;
    const newest = sets[n - 1]!;
    const sealer = { d: newest.seal.d, s: newest.seal.s };
    const answer = (name: string): KeyAnswer => keys.get(name) ?? NO_LOOKUP;
    const checked = this.checkedAms();
    const ams = (k: number): DkimOutcome => {
      const set = checked[k]!;
      if (set.ams.algorithm === 'rsa-sha1' && !this.options.allowSha1) return sha1Outcome(set.ams);
      return checkSignature(this.fields, set.ams, answer(keyQueryName(set.ams)), this.bodies.result(this.amsHashers[k]!), now, this.options);
    };

    // §5.2 step 3: the newest AMS must verify.
    const newestAms = ams(0);
    if (newestAms.result !== 'pass') {
      return failed(n, `i=${n}: ARC-Message-Signature ${describe(newestAms)}`, sealer, viewOutcome(newestAms).temporary);
    }
    // §5.2 step 5: every seal, newest first.
    for (let k = n; k >= 1; k--) {
      const seal = sets[k - 1]!.seal;
      const outcome = this.checkSeal(seal, sets, k, answer(keyQueryName(seal)));
      if (outcome.result !== 'pass') return failed(n, `i=${k}: ARC-Seal ${describe(outcome)}`, sealer, viewOutcome(outcome).temporary);
    }
    // §5.2 step 4: how far down the AMSes still verify.
    let oldestPass = n;
    for (let k = 1; k < checked.length; k++) {
      if (ams(k).result !== 'pass') break;
      oldestPass = checked[k]!.instance;
    }
    return { result: 'pass', instance: n, oldestPass, reason: `${n} set${n === 1 ? '' : 's'}, sealed by ${newest.seal.d}`, sealer, sealerResults: newest.results, temporary: false };
  }

  private checkSeal(seal: ArcSeal, sets: readonly ArcSet[], k: number, answer: KeyAnswer): DkimOutcome {
    const info = { d: seal.d, s: seal.s, a: seal.algorithm, bText: seal.bText };
    if (seal.algorithm === 'rsa-sha1' && !this.options.allowSha1) return { result: 'policy', reason: 'rsa-sha1 is not accepted (RFC 8301)', sig: info, testing: false };
    const use = { algorithm: seal.algorithm, keyType: seal.keyType, hash: seal.hash, d: seal.d, iDomain: seal.d };
    const keys = usableKeys(use, answer, info, keyQueryName(seal));
    if ('outcome' in keys) return keys.outcome;
    return checkHeaderSignature(use, keys.keys, sealData(sets, k), seal.b, info, this.options);
  }
}

/**
 * Every seal must be checked, and each may name a key of its own: a chain of
 * 50 forged sets would cost 50 lookups. Real chains have a handful of
 * sealers; one with more distinct seal keys than twice the signature limit
 * fails before any is looked up.
 */
function limitKeys(chain: ArcChain, maxSignatures: number): ArcChain {
  if (chain.kind !== 'sets') return chain;
  const keys = new Set(chain.sets.map((s) => keyQueryName(s.seal))).size;
  const max = 2 * maxSignatures;
  if (keys <= max) return chain;
  return { kind: 'broken', instance: chain.sets.length, reason: `the seals name ${keys} different keys; at most ${max} are looked up (twice max_signatures)` };
}

function describe(o: DkimOutcome): string {
  const v = viewOutcome(o);
  const words = v.result === 'fail' || v.result === 'policy' ? (v.reason ?? v.result) : `${v.result}: ${v.reason ?? ''}`;
  return v.detail ? `${words} (${v.detail})` : words;
}

function failed(instance: number, reason: string, sealer: ArcOutcome['sealer'], temporary: boolean): ArcOutcome {
  return { result: 'fail', instance, oldestPass: undefined, reason, sealer, sealerResults: undefined, temporary };
}

/** Validates the chain of a whole message held in memory (CRLF line ends). */
export async function verifyArc(message: Buffer, lookup: (name: string) => Promise<KeyAnswer>, now: number, options: VerifyOptions = {}): Promise<ArcOutcome> {
  const { headerEnd, bodyStart } = findBodyStart(message);
  const verifier = new ArcVerifier(parseHeaderBlock(message.toString('latin1', 0, headerEnd)), options);
  verifier.update(message.subarray(bodyStart));
  const names = verifier.keyQueries();
  const answers = await Promise.all(names.map(async (name) => [name, await lookup(name)] as const));
  return verifier.finish(new Map(answers), now);
}
