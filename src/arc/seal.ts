/**
 * Sealing (RFC 8617 §5.1): one new ARC set, i=N+1, from the results our own
 * authserv-id wrote. The chain's state comes from their `arc=` result, not
 * from DNS: the sealer records what its validator found. Pure: the time and
 * the key come in as arguments.
 */
import { createPublicKey } from 'node:crypto';
import { parseAuthenticationResults, type Resinfo } from '../authres/parse.js';
import { signHeaderData, signHeaderDataAsync, verifyHeaderData } from '../dkim/crypto.js';
import { asciiLower, selectHeaders, type HeaderField } from '../dkim/headers.js';
import type { SigningKey } from '../dkim/keys.js';
import { DEFAULT_SIGNED_HEADERS, expandHeaderList, headerHashInput, SignRequestError } from '../dkim/sign.js';
import {
  algorithmParts,
  fieldValue,
  foldSignatureValue,
  foldTagList,
  formatAmsHeader,
  isDomainName,
  isSelector,
  MAX_ARC_INSTANCE,
  type KeyType,
  type SigningAlgorithm,
} from '../dkim/signature.js';
import { BodyHashSet } from '../dkim/bodyhash.js';
import type { HashAlgorithm } from '../dkim/bodyhash.js';
import { highestInstance, instanceOf, parseSeal, readChain, type ArcSet, type ChainValidation } from './chain.js';
import { sealHashInput, type SetText } from './verify.js';

/**
 * The AMS covers what DKIM signs, and the DKIM-Signature fields already
 * there (RFC 8617 §4.1.2 says it SHOULD), so that a later hop can tell which
 * of them its own changes broke.
 */
export const ARC_SIGNED_HEADERS: readonly string[] = [...DEFAULT_SIGNED_HEADERS, 'DKIM-Signature+'];

/** Fields an AMS never covers: the ARC fields (a seal covers them), and A-R, which the next hop removes (RFC 8601 §5). */
const NEVER_SIGNED = new Set(['arc-seal', 'arc-message-signature', 'arc-authentication-results', 'authentication-results']);

export interface SealRequest {
  readonly domain: string;
  readonly selector: string;
  readonly key: SigningKey;
  /** Default: rsa-sha256 for an RSA key, ed25519-sha256 for an Ed25519 one. */
  readonly algorithm?: SigningAlgorithm;
  /** Whose Authentication-Results go into the AAR and say what the chain was. */
  readonly authservId: string;
  /** The AMS's header list (Momentum's modifiers allowed); default ARC_SIGNED_HEADERS. */
  readonly headers?: readonly string[];
}

/** A seal request found valid once, then used for any number of messages. */
export class PreparedSealer {
  readonly domain: string;
  readonly selector: string;
  readonly key: SigningKey;
  readonly algorithm: SigningAlgorithm;
  readonly keyType: KeyType;
  readonly hash: HashAlgorithm;
  readonly authservId: string;
  readonly headers: readonly string[];

  private constructor(r: SealRequest, algorithm: SigningAlgorithm) {
    this.domain = r.domain.toLowerCase();
    this.selector = r.selector;
    this.key = r.key;
    this.algorithm = algorithm;
    const parts = algorithmParts(algorithm);
    this.keyType = parts.keyType;
    this.hash = parts.hash;
    this.authservId = r.authservId;
    this.headers = r.headers ?? ARC_SIGNED_HEADERS;
  }

  /** Throws SignRequestError, naming what is wrong. */
  static prepare(r: SealRequest): PreparedSealer {
    if (!isDomainName(r.domain.toLowerCase())) throw new SignRequestError(`domain "${r.domain}" is not a domain name`);
    if (!isSelector(r.selector)) throw new SignRequestError(`selector "${r.selector}" is not a DNS label sequence`);
    const algorithm = r.algorithm ?? (r.key.keyType === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256');
    if (algorithm === 'rsa-sha1') throw new SignRequestError('ARC seals are never rsa-sha1 (RFC 8301)');
    const parts = algorithmParts(algorithm);
    if (parts.keyType !== r.key.keyType) throw new SignRequestError(`${algorithm} needs an ${parts.keyType} key, got ${r.key.keyType}`);
    if (!/^[^\s;()"]+$/.test(r.authservId)) throw new SignRequestError(`authserv-id "${r.authservId}" is not a token (no spaces, ";", quotes or parentheses)`);
    const headers = r.headers ?? ARC_SIGNED_HEADERS;
    const names = headers.map((h) => asciiLower(h.replace(/[?*+]$/, '')));
    if (!names.includes('from')) throw new SignRequestError('the ARC-Message-Signature must sign From');
    const forbidden = names.find((n) => NEVER_SIGNED.has(n));
    if (forbidden !== undefined) throw new SignRequestError(`the ARC-Message-Signature must not sign ${forbidden}`);
    return new PreparedSealer(r, algorithm);
  }
}

/** What the seal will say, decided from the header alone. */
export type SealPlan =
  | { readonly ok: true; readonly instance: number; readonly cv: ChainValidation; readonly aar: string; readonly below: readonly SetText[] }
  | { readonly ok: false; readonly reason: string };

/** Our authserv-id's results, top field first; fields of others, and fields that do not parse, left out (RFC 8617 §4.1.1). */
export function ownResults(fields: readonly HeaderField[], authservId: string): Resinfo[] {
  const id = authservId.toLowerCase();
  const out: Resinfo[] = [];
  for (const f of fields) {
    if (f.key !== 'authentication-results') continue;
    const parsed = parseAuthenticationResults(fieldValue(f));
    if (parsed !== null && parsed.authservId === id) out.push(...parsed.results);
  }
  return out;
}

/**
 * Our own set, added at receipt by `in` ([in] arc_seal), when `out` seals
 * the same message again: the newest set is sealed with our key and its AAR
 * is our authserv-id's. Our `arc=` result then describes the chain below it.
 * The seal is checked against our own public key, so a set that merely
 * claims our authserv-id is not taken for ours.
 */
function ownNewestSet(set: ArcSet, sealer: PreparedSealer): boolean {
  // `arc=none`: no chain reached us, so our set can only be the first, which seals itself alone.
  if (set.instance !== 1 || set.seal.d !== sealer.domain || set.seal.s !== sealer.selector || set.results.authservId !== sealer.authservId.toLowerCase()) return false;
  const data = sealHashInput([], { aar: set.aar.raw, ams: set.ams.field.raw, seal: set.seal.strippedRaw });
  return verifyHeaderData(sealer.keyType, sealer.hash, createPublicKey(sealer.key.key), data, set.seal.b);
}

export function planSeal(fields: readonly HeaderField[], authservId: string, sealer?: PreparedSealer): SealPlan {
  const n = highestInstance(fields);
  const refuse = (reason: string): SealPlan => ({ ok: false, reason });
  if (n >= MAX_ARC_INSTANCE) return refuse(`the message already has ${n} ARC sets, the most RFC 8617 allows`);
  // RFC 8617 §5.1.2: nothing is added after a seal that says the chain failed.
  const newestSeals = fields.filter((f) => f.key === 'arc-seal' && instanceOf(f) === n).map(parseSeal);
  if (newestSeals.some((p) => p.ok && p.seal.cv === 'fail')) return refuse(`the chain has already failed (the ARC-Seal at i=${n} says cv=fail): no set may be added after it`);
  const chain = n > 0 ? readChain(fields) : undefined;
  const results = ownResults(fields, authservId);
  const arcWords = [...new Set(results.filter((r) => r.method === 'arc').map((r) => r.result))];
  let cv: ChainValidation;
  if (arcWords.length === 0) {
    if (n > 0) return refuse(`the message has ARC sets up to i=${n}, but no arc= result from ${authservId} says whether they validated`);
    cv = 'none';
  } else if (arcWords.length > 1) {
    // Two verdicts on one chain: it cannot be vouched for (dkimpy does the same).
    cv = 'fail';
  } else {
    const word = arcWords[0]!;
    if (word !== 'none' && word !== 'pass' && word !== 'fail') return refuse(`arc=${word} from ${authservId} is not none, pass or fail`);
    cv = word;
    if (cv === 'pass' && n === 0) return refuse(`arc=pass from ${authservId}, but the message has no ARC sets`);
    if (cv === 'none' && n > 0) {
      // The message had no chain when it reached us, and our `in` sealed it: the chain is ours, and it passes.
      if (sealer === undefined || chain?.kind !== 'sets' || !ownNewestSet(chain.sets[chain.sets.length - 1]!, sealer)) {
        return refuse(`arc=none from ${authservId}, but the message has ARC sets up to i=${n}`);
      }
      cv = 'pass';
    }
  }
  let below: SetText[] = [];
  if (chain !== undefined && cv === 'pass') {
    if (chain.kind !== 'sets') return refuse(`arc=pass from ${authservId}, but the chain cannot be read: ${chain.kind === 'broken' ? chain.reason : 'no sets'}`);
    below = chain.sets.map((s) => ({ aar: s.aar.raw, ams: s.ams.field.raw, seal: s.seal.field.raw }));
  }
  const instance = n + 1;
  const payload = results.length > 0 ? results.map((r) => `;\r\n\t${r.text}`).join('') : '; none';
  return { ok: true, instance, cv, aar: `ARC-Authentication-Results: i=${instance}; ${authservId}${payload}\r\n`, below };
}

export type SealResult =
  /** `fields`: ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results, to go on top in that order. */
  | { readonly ok: true; readonly fields: readonly string[]; readonly instance: number; readonly cv: ChainValidation }
  | { readonly ok: false; readonly reason: string };

/** Seals one message: feed the body, then `seal` with the header as it will leave. */
export class MessageSealer {
  private readonly sealer: PreparedSealer;
  private readonly bodies: BodyHashSet;
  private readonly ownsBodies: boolean;
  private readonly hashKey: string;

  constructor(sealer: PreparedSealer, bodies?: BodyHashSet) {
    this.sealer = sealer;
    this.bodies = bodies ?? new BodyHashSet();
    this.ownsBodies = bodies === undefined;
    this.hashKey = this.bodies.want('relaxed', sealer.hash, undefined);
  }

  update(chunk: Uint8Array): void {
    if (this.ownsBodies) this.bodies.update(chunk);
  }

  seal(fields: readonly HeaderField[], now: number): SealResult {
    const u = this.unsigned(fields, now);
    if (!u.ok) return u;
    const sign = (data: Buffer): string => signHeaderData(this.sealer.keyType, this.sealer.hash, this.sealer.key.key, data).toString('base64');
    const ams = complete(u.amsHeader, sign(u.amsData));
    return { ok: true, fields: [complete(u.sealHeader, sign(u.sealData(ams))), ams, u.plan.aar], instance: u.plan.instance, cv: u.plan.cv };
  }

  /** `seal`, with RSA on libuv's thread pool. */
  async sealAsync(fields: readonly HeaderField[], now: number): Promise<SealResult> {
    const u = this.unsigned(fields, now);
    if (!u.ok) return u;
    const { keyType, hash, key } = this.sealer;
    const sign = async (data: Buffer): Promise<string> => (keyType === 'rsa' ? await signHeaderDataAsync(keyType, hash, key.key, data) : signHeaderData(keyType, hash, key.key, data)).toString('base64');
    const ams = complete(u.amsHeader, await sign(u.amsData));
    return { ok: true, fields: [complete(u.sealHeader, await sign(u.sealData(ams))), ams, u.plan.aar], instance: u.plan.instance, cv: u.plan.cv };
  }

  private unsigned(fields: readonly HeaderField[], now: number) {
    const plan = planSeal(fields, this.sealer.authservId, this.sealer);
    if (!plan.ok) return plan;
    const s = this.sealer;
    const t = Math.floor(now);
    const h = expandHeaderList(s.headers, fields, false);
    const amsHeader = formatAmsHeader(plan.instance, {
      algorithm: s.algorithm,
      canonicalization: { header: 'relaxed', body: 'relaxed' },
      d: s.domain,
      s: s.selector,
      h,
      bh: this.bodies.result(this.hashKey).hash.toString('base64'),
      t,
    });
    const amsData = headerHashInput(selectHeaders(fields, h), `${amsHeader}\r\n`, 'relaxed');
    const sealHeader = foldTagList('ARC-Seal', [[`i=${plan.instance};`], [`cv=${plan.cv};`], [`a=${s.algorithm};`], [`d=${s.domain};`], [`s=${s.selector};`], [`t=${t};`]]);
    // A failed chain is sealed alone: the sets below are not vouched for (RFC 8617 §5.1.2).
    const sealData = (ams: string): Buffer => sealHashInput(plan.cv === 'fail' ? [] : plan.below, { aar: plan.aar, ams, seal: `${sealHeader}\r\n` });
    return { ok: true as const, plan, amsHeader, amsData, sealHeader, sealData };
  }
}

function complete(header: string, b: string): string {
  return `${header}${foldSignatureValue(header, b)}\r\n`;
}
