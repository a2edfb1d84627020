/**
 * Signing: any number of signatures over one message in one pass of the body.
 * Pure: the time and the keys come in as arguments.
 */
import { BodyHashSet } from './bodyhash.js';
import { canonicalizeHeader, type Canonicalization } from './canonicalize.js';
import { signHeaderData, signHeaderDataAsync } from './crypto.js';
import { asciiLower, countHeaders, findBodyStart, parseHeaderBlock, selectHeaders, type HeaderField } from './headers.js';
import type { HashAlgorithm } from './bodyhash.js';
import type { SigningKey } from './keys.js';
import {
  algorithmParts,
  foldSignatureValue,
  formatSignatureHeader,
  isDomainName,
  isSameOrSubdomain,
  isSelector,
  type KeyType,
  type SigningAlgorithm,
} from './signature.js';

/**
 * RFC 6376 §5.4.1's recommended list plus the MIME fields. Names without a
 * modifier are the ones a relay must not add (over-signed when `overSign`);
 * `?` marks fields signed when present but never asserted absent, because
 * relays and list servers legitimately add them.
 */
export const DEFAULT_SIGNED_HEADERS: readonly string[] = [
  'From', 'Reply-To', 'Subject', 'Date', 'To', 'Cc',
  'Resent-Date?', 'Resent-From?', 'Resent-To?', 'Resent-Cc?',
  'In-Reply-To', 'References',
  'List-Id?', 'List-Help?', 'List-Unsubscribe?', 'List-Unsubscribe-Post?', 'List-Subscribe?', 'List-Post?', 'List-Owner?', 'List-Archive?',
  'Message-ID?', 'MIME-Version?', 'Content-Type?', 'Content-Transfer-Encoding?',
];

export interface SignRequest {
  readonly domain: string;
  readonly selector: string;
  readonly key: SigningKey;
  readonly algorithm: SigningAlgorithm;
  readonly canonicalization: Canonicalization;
  /** Header names with Momentum's modifiers: `Name`, `Name?`, `Name*`, `Name+`. */
  readonly headers?: readonly string[];
  /** KumoMTA's over_sign: each plain name covers every copy plus one absent one. */
  readonly overSign?: boolean;
  /** `i=`; must be within `domain`. */
  readonly identity?: string;
  /** Seconds after `t=` when the signature expires (`x=`). */
  readonly expiresIn?: number;
  /** Sign with `l=` (the whole body's canonical length); unsafe, see RFC 6376 §8.2. */
  readonly bodyLength?: boolean;
  /** Copy the signed headers into `z=` (debugging aid). */
  readonly copyHeaders?: boolean;
  /** rsa-sha1 is refused unless this legacy switch is on (RFC 8301). */
  readonly allowSha1?: boolean;
}

export class SignRequestError extends Error {
  override name = 'SignRequestError';
}

/**
 * Expands a header spec into the `h=` list for this message. Entries are
 * consumed in order, bottom-up, as a verifier will consume them.
 */
export function expandHeaderList(spec: readonly string[], fields: readonly HeaderField[], overSign: boolean): string[] {
  const counts = countHeaders(fields);
  const used = new Map<string, number>();
  const out: string[] = [];
  for (const entry of spec) {
    const modifier = /[?*+]$/.test(entry) ? entry.slice(-1) : '';
    const name = modifier ? entry.slice(0, -1) : entry;
    const key = asciiLower(name);
    const remaining = Math.max(0, (counts.get(key) ?? 0) - (used.get(key) ?? 0));
    let n: number;
    switch (modifier) {
      case '?':
        n = remaining > 0 ? 1 : 0;
        break;
      case '*':
        n = Math.max(remaining, 1);
        break;
      case '+':
        n = remaining;
        break;
      default:
        n = overSign ? remaining + 1 : 1;
    }
    used.set(key, (used.get(key) ?? 0) + n);
    for (let k = 0; k < n; k++) out.push(name);
  }
  return out;
}

function checkRequest(r: SignRequest): void {
  const d = r.domain.toLowerCase();
  if (!isDomainName(d)) throw new SignRequestError(`domain "${r.domain}" is not a domain name`);
  if (!isSelector(r.selector)) {
    throw new SignRequestError(`selector "${r.selector}" is not a DNS label sequence`);
  }
  const parts = algorithmParts(r.algorithm);
  if (parts.keyType !== r.key.keyType) throw new SignRequestError(`${r.algorithm} needs an ${parts.keyType} key, got ${r.key.keyType}`);
  if (r.algorithm === 'rsa-sha1' && !r.allowSha1) throw new SignRequestError('rsa-sha1 signing is disabled (RFC 8301); enable the legacy switch to use it');
  if (r.identity !== undefined) {
    const at = r.identity.lastIndexOf('@');
    if (at === -1 || !isSameOrSubdomain(r.identity.slice(at + 1).toLowerCase(), d)) {
      throw new SignRequestError(`identity "${r.identity}" is not within ${d}`);
    }
  }
  if (r.expiresIn !== undefined && !(Number.isInteger(r.expiresIn) && r.expiresIn > 0)) {
    throw new SignRequestError('expiresIn must be a positive whole number of seconds');
  }
}

/** RFC 6376 §2.11 dkim-quoted-printable for `z=`: `|`, `;`, `=` and non-printables are escaped. */
function dkimQuotedPrintable(s: string): string {
  let out = '';
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    const safe = c >= 0x21 && c <= 0x7e && c !== 0x3b && c !== 0x3d && c !== 0x7c;
    out += safe ? s[k] : `=${c.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * A signing request found valid: made once (the config loader makes one per
 * configured signer), then used for any number of messages without checks.
 */
export class PreparedSigner {
  readonly request: SignRequest;
  /** The body hasher it needs: signers that share one share a pass over the body. */
  readonly hasherKey: string;
  readonly keyType: KeyType;
  readonly hash: HashAlgorithm;

  private constructor(request: SignRequest) {
    this.request = Object.freeze({ ...request, domain: request.domain.toLowerCase() });
    const parts = algorithmParts(request.algorithm);
    this.keyType = parts.keyType;
    this.hash = parts.hash;
    this.hasherKey = `${request.canonicalization.body}/${parts.hash}`;
  }

  /** Throws SignRequestError, naming what is wrong, for a request that cannot sign. */
  static prepare(request: SignRequest): PreparedSigner {
    checkRequest(request);
    return new PreparedSigner(request);
  }
}

/** Signs one message. Feed the body with `update`, then call `finish` once. */
export class MessageSigner {
  private readonly fields: readonly HeaderField[];
  private readonly bodies: BodyHashSet;
  private readonly ownsBodies: boolean;
  private readonly signers: readonly PreparedSigner[];

  /**
   * `headerBlock`: the binary string, or its fields if the caller has parsed
   * them already. `bodies`: hashes shared with another step (an ARC seal),
   * fed by their owner.
   */
  constructor(headerBlock: string | readonly HeaderField[], signers: readonly PreparedSigner[], bodies?: BodyHashSet) {
    this.signers = signers;
    this.fields = typeof headerBlock === 'string' ? parseHeaderBlock(headerBlock) : headerBlock;
    this.bodies = bodies ?? new BodyHashSet();
    this.ownsBodies = bodies === undefined;
    for (const p of signers) this.bodies.want(p.request.canonicalization.body, p.hash, undefined);
  }

  update(chunk: Uint8Array): void {
    if (this.ownsBodies) this.bodies.update(chunk);
  }

  /** Returns one DKIM-Signature field (ending in CRLF) per request, in request order. */
  finish(now: number): string[] {
    return this.unsigned(now).map((u) => complete(u, signHeaderData(u.signer.keyType, u.signer.hash, u.signer.request.key.key, u.data)));
  }

  /**
   * `finish`, with the RSA operations on libuv's thread pool, so that a
   * server's event loop goes on with other connections meanwhile. The fields
   * are the same, byte for byte. Ed25519 stays here: it costs less than the
   * hand-over.
   */
  async finishAsync(now: number): Promise<string[]> {
    return Promise.all(
      this.unsigned(now).map(async (u) => {
        const { keyType, hash } = u.signer;
        const key = u.signer.request.key.key;
        return complete(u, keyType === 'rsa' ? await signHeaderDataAsync(keyType, hash, key, u.data) : signHeaderData(keyType, hash, key, u.data));
      }),
    );
  }

  /** Each request's DKIM-Signature field with an empty b=, and the data its signature covers. */
  private unsigned(now: number): Unsigned[] {
    return this.signers.map((signer) => {
      const r = signer.request;
      const body = this.bodies.result(this.bodies.want(r.canonicalization.body, signer.hash, undefined));
      const h = expandHeaderList(r.headers ?? DEFAULT_SIGNED_HEADERS, this.fields, r.overSign ?? true);
      const selected = selectHeaders(this.fields, h);
      const t = Math.floor(now);
      const header = formatSignatureHeader({
        algorithm: r.algorithm,
        canonicalization: r.canonicalization,
        d: r.domain,
        s: r.selector,
        h,
        bh: body.hash.toString('base64'),
        i: r.identity,
        l: r.bodyLength ? body.canonicalLength : undefined,
        t,
        x: r.expiresIn === undefined ? undefined : t + r.expiresIn,
        z: r.copyHeaders ? copiedHeaders(selected) : undefined,
      });
      return { signer, header, data: headerHashInput(selected, `${header}\r\n`, r.canonicalization.header) };
    });
  }
}

interface Unsigned {
  readonly signer: PreparedSigner;
  readonly header: string;
  readonly data: Buffer;
}

function complete(u: Unsigned, signature: Buffer): string {
  return `${u.header}${foldSignatureValue(u.header, signature.toString('base64'))}\r\n`;
}

function copiedHeaders(selected: readonly (HeaderField | null)[]): string {
  return selected
    .filter((f): f is HeaderField => f !== null)
    .map((f) => {
      const value = f.raw.slice(f.raw.indexOf(':') + 1).replace(/\r\n$/, '').replace(/\r\n/g, '');
      return `${f.name}:${dkimQuotedPrintable(value)}`;
    })
    .join('|');
}

/**
 * RFC 6376 §3.7: the signed headers, then this signature's own field with an
 * empty `b=` and no final CRLF, each in the header canonicalization.
 */
export function headerHashInput(selected: readonly (HeaderField | null)[], ownField: string, canon: Canonicalization['header']): Buffer {
  let data = '';
  for (const f of selected) if (f !== null) data += canonicalizeHeader(f.raw, canon);
  data += canonicalizeHeader(ownField, canon).replace(/\r\n$/, '');
  return Buffer.from(data, 'latin1');
}

/**
 * Signs a whole message held in memory (CRLF line ends); returns the fields to
 * prepend. Plain requests are prepared (checked) here, for one-off use.
 */
export function signMessage(message: Buffer, signers: readonly (PreparedSigner | SignRequest)[], now: number): string[] {
  const { headerEnd, bodyStart } = findBodyStart(message);
  const prepared = signers.map((s) => (s instanceof PreparedSigner ? s : PreparedSigner.prepare(s)));
  const signer = new MessageSigner(message.toString('latin1', 0, headerEnd), prepared);
  signer.update(message.subarray(bodyStart));
  return signer.finish(now);
}
