/**
 * DKIM key records in DNS (RFC 6376 §3.6.1, RFC 8463 §4): parsing a TXT value
 * into a usable public key, and writing one.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { parseTagList, stripFws } from './tags.js';
import { asciiLower } from './headers.js';
import type { KeyType } from './signature.js';
import { boundedMemo } from '../util/memo.js';

export interface DkimKeyRecord {
  readonly keyType: KeyType;
  /** `h=`: acceptable hash algorithms, or null when any is. */
  readonly hashes: readonly string[] | null;
  /** `s=`: service types (`*` or `email`). */
  readonly services: readonly string[];
  /** `t=y`: the domain is testing DKIM. */
  readonly testing: boolean;
  /** `t=s`: `i=` must use exactly `d=`, no subdomain. */
  readonly strict: boolean;
  /** Null when `p=` is empty: the key was revoked. */
  readonly publicKey: KeyObject | null;
  /** RSA modulus size; undefined for ed25519 and revoked keys. */
  readonly bits: number | undefined;
}

export type KeyRecordResult =
  | { readonly ok: true; readonly record: DkimKeyRecord }
  | { readonly ok: false; readonly tag: string | null; readonly message: string };

// DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows (RFC 8410).
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * Parsing a public key (OpenSSL's DER decoder) costs several times an RSA
 * verification, and a verifier sees the same few records over and over, so
 * results are memoized by record text. Bounded; the oldest entry goes first.
 */
export const parseKeyRecord: (txt: string) => KeyRecordResult = boundedMemo((txt) => parseKeyRecordUncached(txt), 1024);

function parseKeyRecordUncached(txt: string): KeyRecordResult {
  const parsed = parseTagList(txt);
  // A tag of a later extension may break the strict grammar (`x-future=1`);
  // the record is still read when the tags that matter are well formed, as
  // Mail::DKIM, dkimpy and OpenDKIM read it.
  const tags: ReadonlyMap<string, { readonly value: string }> | null = parsed.ok ? parsed.tags : lenientTags(txt);
  if (tags === null) return { ok: false, tag: parsed.ok ? null : parsed.tag, message: parsed.ok ? '' : parsed.message };
  const bad = (tag: string, message: string): KeyRecordResult => ({ ok: false, tag, message });

  const v = tags.get('v');
  if (v !== undefined) {
    if (v.value !== 'DKIM1') return bad('v', `unsupported version "${v.value}" (expected DKIM1)`);
    // RFC 6376 §3.6.1: if present, v= MUST be the first tag.
    if (tags.keys().next().value !== 'v') return bad('v', 'v= is present but not the first tag');
  }
  const k = tags.has('k') ? asciiLower(tags.get('k')!.value) : 'rsa';
  if (k !== 'rsa' && k !== 'ed25519') return bad('k', `unsupported key type "${k}"`);
  const pTag = tags.get('p');
  if (pTag === undefined) return bad('p', 'required tag "p" is missing');
  const hashes = tags.has('h') ? stripFws(tags.get('h')!.value).split(':').map(asciiLower) : null;
  const services = tags.has('s') ? stripFws(tags.get('s')!.value).split(':').map(asciiLower) : ['*'];
  const flags = tags.has('t') ? stripFws(tags.get('t')!.value).split(':').map(asciiLower) : [];
  const base = { keyType: k, hashes, services, testing: flags.includes('y'), strict: flags.includes('s') } as const;

  const p = stripFws(pTag.value);
  if (p === '') return { ok: true, record: { ...base, publicKey: null, bits: undefined } };
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(p)) return bad('p', 'public key is not base64');
  const der = Buffer.from(p, 'base64');
  const publicKey = k === 'ed25519' ? ed25519Key(der) : rsaKey(der);
  if (publicKey === null) return bad('p', `public key is not a valid ${k} key`);
  const bits = k === 'rsa' ? publicKey.asymmetricKeyDetails?.modulusLength : undefined;
  return { ok: true, record: { ...base, publicKey, bits } };
}

const KNOWN_TAG = /^[A-Za-z][A-Za-z0-9_]*$/;

/**
 * `;`-separated `name=value` pairs with any name: the known tags are then
 * checked as strictly as ever, the others ignored. Null when even that fails
 * (no `=`, a duplicate name, or a known tag's value with a character the
 * grammar does not allow).
 */
function lenientTags(txt: string): Map<string, { readonly value: string }> | null {
  const tags = new Map<string, { readonly value: string }>();
  for (const part of txt.split(';')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq === -1) return null;
    const name = part.slice(0, eq).replace(/[ \t\r\n]+/g, '');
    const value = part.slice(eq + 1).trim();
    if (tags.has(name)) return null;
    if (KNOWN_TAG.test(name)) {
      const strict = parseTagList(`${name}=${value}`);
      if (!strict.ok) return null;
    }
    tags.set(name, { value });
  }
  return tags;
}

/** RFC 6376 is inconsistent (erratum 3017): accept SubjectPublicKeyInfo and bare RSAPublicKey. */
function rsaKey(der: Buffer): KeyObject | null {
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      const key = createPublicKey({ key: der, format: 'der', type });
      if (key.asymmetricKeyType === 'rsa') return key;
    } catch {
      // try the next encoding
    }
  }
  return null;
}

/** RFC 8463 §4: `p=` is the raw 32-byte public key, not an SPKI structure. */
function ed25519Key(raw: Buffer): KeyObject | null {
  if (raw.length !== 32) return null;
  try {
    return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
  } catch {
    return null;
  }
}

/** The `p=` value for a public key: SPKI DER for RSA, the raw key for ed25519. */
export function publicKeyData(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' });
  if (key.asymmetricKeyType === 'ed25519') return der.subarray(der.length - 32);
  if (key.asymmetricKeyType === 'rsa') return der;
  throw new Error(`unsupported key type ${key.asymmetricKeyType}`);
}

export interface KeyRecordOptions {
  readonly testing?: boolean;
  readonly hashes?: readonly string[];
  readonly services?: readonly string[];
  readonly strict?: boolean;
}

/** Writes `v=DKIM1; k=...; p=...` for a public (or private) key. */
export function formatKeyRecord(key: KeyObject, options: KeyRecordOptions = {}): string {
  const keyType = key.asymmetricKeyType;
  if (keyType !== 'rsa' && keyType !== 'ed25519') throw new Error(`unsupported key type ${keyType}`);
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const tags = ['v=DKIM1', `k=${keyType}`];
  if (options.hashes) tags.push(`h=${options.hashes.join(':')}`);
  if (options.services) tags.push(`s=${options.services.join(':')}`);
  const flags = [...(options.testing ? ['y'] : []), ...(options.strict ? ['s'] : [])];
  if (flags.length > 0) tags.push(`t=${flags.join(':')}`);
  tags.push(`p=${publicKeyData(pub).toString('base64')}`);
  return tags.join('; ');
}

/** Splits a TXT value into the <= 255-octet character-strings a zone file needs (RFC 1035 §3.3.14). */
export function splitTxt(value: string, size = 255): string[] {
  const out: string[] = [];
  for (let k = 0; k < value.length; k += size) out.push(value.slice(k, k + size));
  return out.length > 0 ? out : [''];
}
