/**
 * Private signing keys: parsing PEM (PKCS#1 as DKIMproxy writes it, or PKCS#8
 * as OpenSSL 3 does) into a KeyObject that is parsed once and reused, and
 * generating new keys. No files here: callers bring the bytes.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { KeyType } from './signature.js';

export interface SigningKey {
  readonly key: KeyObject;
  readonly keyType: KeyType;
  /** RSA modulus size; undefined for ed25519. */
  readonly bits: number | undefined;
  /** The PEM flavour found, for messages. */
  readonly format: 'pkcs1' | 'pkcs8' | 'other';
}

export type SigningKeyResult = { readonly ok: true; readonly key: SigningKey } | { readonly ok: false; readonly message: string };

/** RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits. */
export const MIN_RSA_BITS = 1024;

export function parsePrivateKey(pem: string | Buffer): SigningKeyResult {
  const text = typeof pem === 'string' ? pem : pem.toString('latin1');
  const format = text.includes('BEGIN RSA PRIVATE KEY') ? 'pkcs1' : text.includes('BEGIN PRIVATE KEY') ? 'pkcs8' : 'other';
  if (text.includes('BEGIN ENCRYPTED PRIVATE KEY') || /Proc-Type:\s*4,ENCRYPTED/.test(text)) {
    return { ok: false, message: 'the key is encrypted with a passphrase; store it unencrypted with mode 0600' };
  }
  if (!text.includes('-----BEGIN')) return { ok: false, message: 'not a PEM private key (no "-----BEGIN" line)' };
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return { ok: false, message: `cannot parse the ${format === 'other' ? 'PEM' : format.toUpperCase()} key: ${reason}` };
  }
  const type = key.asymmetricKeyType;
  if (type === 'ed25519') return { ok: true, key: { key, keyType: 'ed25519', bits: undefined, format } };
  if (type !== 'rsa') return { ok: false, message: `unsupported key type "${type}" (DKIM uses rsa or ed25519)` };
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) return { ok: false, message: `RSA key has ${bits} bits; RFC 8301 requires at least ${MIN_RSA_BITS}` };
  return { ok: true, key: { key, keyType: 'rsa', bits, format } };
}

export const KEY_KINDS = ['rsa-1024', 'rsa-2048', 'rsa-4096', 'ed25519'] as const;
export type KeyKind = (typeof KEY_KINDS)[number];

/**
 * Generates a key. RSA keys are written as PKCS#1 ("BEGIN RSA PRIVATE KEY"),
 * which DKIMproxy, OpenDKIM and Mail::DKIM all read; ed25519 only has PKCS#8.
 */
export function generateSigningKey(kind: KeyKind): { pem: string; key: KeyObject } {
  if (kind === 'ed25519') {
    const { privateKey } = generateKeyPairSync('ed25519');
    return { pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), key: privateKey };
  }
  const modulusLength = Number(kind.slice(4));
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength, publicExponent: 0x10001 });
  return { pem: privateKey.export({ format: 'pem', type: 'pkcs1' }).toString(), key: privateKey };
}
