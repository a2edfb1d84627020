/**
 * DKIM-Signature header fields: parsing into a checked value (RFC 6376 §3.5,
 * §6.1.1) and formatting with folding that is identical in the hashed and the
 * emitted form (DKIM-PITFALLS 11).
 */
import { parseCanonicalization, type Canonicalization } from './canonicalize.js';
import { asciiLower, type HeaderField } from './headers.js';
import { parseTagList, stripFws, stripTagValue } from './tags.js';
import type { HashAlgorithm } from './bodyhash.js';

export const SIGNING_ALGORITHMS = ['rsa-sha256', 'ed25519-sha256', 'rsa-sha1'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];
export type KeyType = 'rsa' | 'ed25519';

export function algorithmParts(a: SigningAlgorithm): { keyType: KeyType; hash: HashAlgorithm } {
  switch (a) {
    case 'rsa-sha256':
      return { keyType: 'rsa', hash: 'sha256' };
    case 'rsa-sha1':
      return { keyType: 'rsa', hash: 'sha1' };
    case 'ed25519-sha256':
      return { keyType: 'ed25519', hash: 'sha256' };
  }
}

export interface DkimSignature {
  readonly field: HeaderField;
  readonly algorithm: SigningAlgorithm;
  readonly keyType: KeyType;
  readonly hash: HashAlgorithm;
  readonly b: Buffer;
  /** `b=` as written, FWS removed (for RFC 6008 `header.b`). */
  readonly bText: string;
  readonly bh: Buffer;
  readonly canonicalization: Canonicalization;
  /** Lower-cased signing domain. */
  readonly d: string;
  readonly s: string;
  /** Header names as listed in `h=` (case kept). */
  readonly h: readonly string[];
  /** The AUID; defaults to `@d`. */
  readonly i: string;
  /** Lower-cased domain part of `i=`. */
  readonly iDomain: string;
  readonly l: number | undefined;
  readonly t: number | undefined;
  readonly x: number | undefined;
  readonly z: string | undefined;
  /** The field with this signature's `b=` value removed, ready for canonicalization. */
  readonly strippedRaw: string;
  /** ARC-Message-Signature only: the ARC instance (`i=`, RFC 8617 §4.2.1), which replaces DKIM's AUID. */
  readonly instance?: number;
}

/**
 * Which field is parsed: a DKIM-Signature, or an ARC-Message-Signature (RFC
 * 8617 §4.1.2: the same tags, but no `v=` and an instance number in `i=`).
 */
export type SignatureKind = 'dkim' | 'ams';

/** RFC 8617 §4.2.1: instances are 1 to 50. */
export const MAX_ARC_INSTANCE = 50;

/** What could be read of a signature even when it is broken, for reporting. */
export interface PartialSignatureInfo {
  readonly d?: string;
  readonly s?: string;
  readonly a?: string;
  readonly i?: string;
  readonly bText?: string;
}

export type SignatureParseResult =
  | { readonly ok: true; readonly signature: DkimSignature }
  | { readonly ok: false; readonly info: PartialSignatureInfo; readonly tag: string | null; readonly message: string };

const DECIMAL = /^[0-9]{1,76}$/;
export const MAX_SIGNED_HEADERS = 256;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The value of a header field: after the first colon, without the field's final CRLF. */
export function fieldValue(field: HeaderField): string {
  const colon = field.raw.indexOf(':');
  return colon === -1 ? '' : field.raw.slice(colon + 1).replace(/\r?\n$/, '');
}

/**
 * RFC 6376 §6.1.1 checks that need nothing but the header itself. The result
 * says which tag was wrong and how, and keeps what was readable for A-R output.
 */
export function parseSignature(field: HeaderField, kind: SignatureKind = 'dkim'): SignatureParseResult {
  const colon = field.raw.indexOf(':');
  const valueOffset = colon + 1;
  const value = fieldValue(field);
  const parsed = parseTagList(value);
  if (!parsed.ok) return { ok: false, info: {}, tag: parsed.tag, message: parsed.message };
  const tags = parsed.tags;
  const get = (name: string): string | undefined => tags.get(name)?.value;
  // What was readable, for the A-R of a broken signature: only a broken one needs it.
  const bad = (tag: string | null, message: string): SignatureParseResult => {
    const info: PartialSignatureInfo = {
      ...optional('d', get('d')),
      ...optional('s', get('s')),
      ...optional('a', get('a')),
      ...optional('i', get('i')),
      ...optional('bText', tags.has('b') ? stripFws(tags.get('b')!.value) : undefined),
    };
    return { ok: false, info, tag, message };
  };

  for (const required of kind === 'dkim' ? ['v', 'a', 'b', 'bh', 'd', 'h', 's'] : ['i', 'a', 'b', 'bh', 'd', 'h', 's']) {
    if (!tags.has(required)) return bad(required, `required tag "${required}" is missing`);
  }
  // An AMS has no version; one that carries v= anyway is not wrong (RFC 8617 §4.1.2).
  if (kind === 'dkim' && get('v') !== '1') return bad('v', `unsupported version "${get('v')}" (expected 1)`);
  const a = asciiLower(get('a')!);
  if (!(SIGNING_ALGORITHMS as readonly string[]).includes(a)) return bad('a', `unsupported algorithm "${get('a')}"`);
  const algorithm = a as SigningAlgorithm;
  const bTag = tags.get('b')!;
  const bText = stripFws(bTag.value);
  if (bText === '' || !BASE64.test(bText)) return bad('b', 'signature data is empty or not base64');
  const bhText = stripFws(get('bh')!);
  if (bhText === '' || !BASE64.test(bhText)) return bad('bh', 'body hash is empty or not base64');
  const canonicalization = parseCanonicalization(tags.has('c') ? asciiLower(stripFws(get('c')!)) : undefined);
  if (canonicalization === null) return bad('c', `unknown canonicalization "${get('c')}"`);
  const d = asciiLower(get('d')!).replace(/\.$/, '');
  if (!isDomainName(d)) return bad('d', `"${get('d')}" is not a domain name`);
  const s = stripFws(get('s')!);
  if (!/^[A-Za-z0-9_](?:[A-Za-z0-9_-]*)(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)*$/.test(s)) return bad('s', `"${get('s')}" is not a selector`);
  // A name that can never be asked for is a permanent error, not a DNS failure.
  if (!fitsDns(`${s}._domainkey.${d}`)) return bad('s', `the key's name "${s}._domainkey.${d}" cannot exist in DNS (a label over 63 octets, or over 253 in all)`);
  const h = stripFws(get('h')!).split(':');
  // DoS bound: real signers list a few dozen names.
  if (h.length > MAX_SIGNED_HEADERS) return bad('h', `lists ${h.length} header names (at most ${MAX_SIGNED_HEADERS} are accepted)`);
  if (h.some((n) => !/^[\x21-\x39\x3b-\x7e]+$/.test(n))) return bad('h', 'malformed header name list');
  // RFC 6376 §6.1.1: the From header field MUST be signed.
  if (!h.some((n) => asciiLower(n) === 'from')) return bad('h', 'From is not signed');
  // RFC 8617 §4.1.2: a seal covers the AMS, never the other way round.
  if (kind === 'ams' && h.some((n) => asciiLower(n) === 'arc-seal')) return bad('h', 'an ARC-Message-Signature must not sign ARC-Seal');

  let i = `@${d}`;
  let instance: number | undefined;
  if (kind === 'ams') {
    const n = parseInstance(get('i')!);
    if (n === null) return bad('i', `"${get('i')}" is not an ARC instance (1 to ${MAX_ARC_INSTANCE})`);
    instance = n;
  } else if (tags.has('i')) {
    i = stripFws(get('i')!);
    if (!i.includes('@')) return bad('i', `"${i}" is not an identity (no "@")`);
  }
  const iDomain = asciiLower(i.slice(i.lastIndexOf('@') + 1)).replace(/\.$/, '');
  if (!isSameOrSubdomain(iDomain, d)) return bad('i', `identity domain "${iDomain}" is not "${d}" or a subdomain of it`);

  const num = (tag: string): number | undefined | null => {
    const v = get(tag);
    if (v === undefined) return undefined;
    return DECIMAL.test(v) ? Number(v) : null;
  };
  const l = num('l');
  if (l === null) return bad('l', `"${get('l')}" is not a decimal length`);
  const t = num('t');
  if (t === null) return bad('t', `"${get('t')}" is not a timestamp`);
  const x = num('x');
  if (x === null) return bad('x', `"${get('x')}" is not a timestamp`);
  if (x !== undefined && t !== undefined && x <= t) return bad('x', 'expiration is not after the signing time');
  if (tags.has('q')) {
    const methods = stripFws(get('q')!).split(':');
    if (!methods.some((m) => asciiLower(m) === 'dns/txt')) return bad('q', `no supported query method in "${get('q')}"`);
  }

  const parts = algorithmParts(algorithm);
  const stripped = stripTagValue(value, bTag);
  return {
    ok: true,
    signature: {
      field,
      algorithm,
      keyType: parts.keyType,
      hash: parts.hash,
      b: Buffer.from(bText, 'base64'),
      bText,
      bh: Buffer.from(bhText, 'base64'),
      canonicalization,
      d,
      s,
      h,
      i,
      iDomain,
      l,
      t,
      x,
      z: get('z'),
      strippedRaw: `${field.raw.slice(0, valueOffset)}${stripped}\r\n`,
      ...(instance !== undefined ? { instance } : {}),
    },
  };
}

/** An ARC `i=` value: 1 to 50, decimal, FWS around it allowed; null otherwise. */
export function parseInstance(value: string): number | null {
  const v = stripFws(value);
  if (!/^[0-9]{1,2}$/.test(v)) return null;
  const n = Number(v);
  return n >= 1 && n <= MAX_ARC_INSTANCE ? n : null;
}

function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string };
}

/** RFC 1035 §2.3.4: labels of 1 to 63 octets, at most 253 in all (without the root's dot). */
export function fitsDns(name: string): boolean {
  return name.length > 0 && name.length <= 253 && name.split('.').every((label) => label.length > 0 && label.length <= 63);
}

export function isDomainName(d: string): boolean {
  if (!fitsDns(d)) return false;
  return d.split('.').every((label) => /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/i.test(label) || /^xn--[a-z0-9-]+$/i.test(label));
}

/**
 * RFC 6376 §3.1 selector syntax (sub-domain labels; "_" allowed, as DNS
 * practice has it). For selectors we write: parsing others' signatures is
 * more lenient on purpose.
 */
export function isSelector(s: string): boolean {
  return /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$/.test(s) && s.length <= 253;
}

/** Label-aware: `fexample.net` is not under `example.net` (DKIM-PITFALLS 21). */
export function isSameOrSubdomain(child: string, parent: string): boolean {
  return child === parent || child.endsWith(`.${parent}`);
}

export interface SignatureTags {
  readonly algorithm: SigningAlgorithm;
  readonly canonicalization: Canonicalization;
  readonly d: string;
  readonly s: string;
  readonly h: readonly string[];
  readonly bh: string;
  readonly i?: string | undefined;
  readonly l?: number | undefined;
  readonly t?: number | undefined;
  readonly x?: number | undefined;
  readonly z?: string | undefined;
}

const MAX_LINE = 78;

/** One tag's atoms: joined without a space, so that a fold may go between them. */
export type TagAtoms = readonly string[];

/**
 * Formats a DKIM-Signature field without its `b=` value. The result ends in
 * `b=`; the caller appends the folded signature with `foldSignatureValue`.
 * Breaks go only where FWS is legal: between tags, around `:` in `h=`, inside
 * base64 and between `|`-separated `z=` entries.
 */
export function formatSignatureHeader(tags: SignatureTags): string {
  return foldTagList('DKIM-Signature', [['v=1;'], ...signatureTagAtoms(tags, [])]);
}

/**
 * An ARC-Message-Signature without its `b=` value (RFC 8617 §4.1.2): the
 * instance first, as the ARC header fields put it, then DKIM's tags.
 */
export function formatAmsHeader(instance: number, tags: SignatureTags): string {
  return foldTagList('ARC-Message-Signature', [[`i=${instance};`], ...signatureTagAtoms(tags, ['q'])]);
}

function signatureTagAtoms(tags: SignatureTags, leaveOut: readonly string[]): TagAtoms[] {
  const c = `${tags.canonicalization.header}/${tags.canonicalization.body}`;
  const pieces: string[][] = [[`a=${tags.algorithm};`], [`c=${c};`], [`d=${tags.d};`], [`s=${tags.s};`]];
  if (!leaveOut.includes('q')) pieces.push(['q=dns/txt;']);
  if (tags.i !== undefined) pieces.push([`i=${tags.i};`]);
  if (tags.l !== undefined) pieces.push([`l=${tags.l};`]);
  if (tags.t !== undefined) pieces.push([`t=${tags.t};`]);
  if (tags.x !== undefined) pieces.push([`x=${tags.x};`]);
  pieces.push(tags.h.map((name, k) => (k === 0 ? 'h=' : ':') + name).map((p, k, all) => (k === all.length - 1 ? `${p};` : p)));
  if (tags.z !== undefined) pieces.push(splitZ(`z=${tags.z};`));
  pieces.push(chunk(`bh=${tags.bh};`, MAX_LINE - 1));
  return pieces;
}

/**
 * `name:` and the tags, folded at 78 columns, ending in `b=` (on the last
 * line if it fits there). The fold is the same in the hashed and the sent
 * form, so the signature covers what is sent (DKIM-PITFALLS 11).
 */
export function foldTagList(name: string, pieces: readonly TagAtoms[]): string {
  let out = `${name}:`;
  let col = out.length;
  for (const atoms of pieces) {
    let first = true;
    for (const atom of atoms) {
      // Atoms of one tag join without a space; tags are separated by one SP.
      const sep = first ? ' ' : '';
      if (col + sep.length + atom.length > MAX_LINE) {
        out += '\r\n\t' + atom;
        col = 1 + atom.length;
      } else {
        out += sep + atom;
        col += sep.length + atom.length;
      }
      first = false;
    }
  }
  if (col + 3 > MAX_LINE) {
    out += '\r\n\tb=';
  } else {
    out += ' b=';
  }
  return out;
}

/** The base64 signature, folded to continue the `b=` line of `header`. */
export function foldSignatureValue(header: string, b: string): string {
  const lastLine = header.slice(header.lastIndexOf('\n') + 1);
  let col = lastLine.length;
  let out = '';
  let pos = 0;
  while (pos < b.length) {
    const room = MAX_LINE - col;
    if (room <= 0) {
      out += '\r\n\t';
      col = 1;
      continue;
    }
    out += b.slice(pos, pos + room);
    col += Math.min(room, b.length - pos);
    pos += room;
  }
  return out;
}

function chunk(s: string, size: number): string[] {
  const out: string[] = [];
  for (let k = 0; k < s.length; k += size) out.push(s.slice(k, k + size));
  return out;
}

/** Splits `z=` after each `|`; overlong entries are cut outside `=XX` escapes. */
function splitZ(z: string): string[] {
  const out: string[] = [];
  for (const entry of z.split(/(?<=\|)/)) {
    let rest = entry;
    while (rest.length > MAX_LINE - 2) {
      let cut = MAX_LINE - 2;
      const esc = rest.lastIndexOf('=', cut);
      if (esc > 1 && esc > cut - 3) cut = esc;
      out.push(rest.slice(0, cut));
      rest = rest.slice(cut);
    }
    out.push(rest);
  }
  return out;
}
