/**
 * The two signature primitives over the canonical header data (RFC 6376 §3.7,
 * RFC 8463 §3). Node's crypto (OpenSSL) does the mathematics.
 */
import { constants, createHash, publicDecrypt, sign, verify, type KeyObject } from 'node:crypto';
import type { HashAlgorithm } from './bodyhash.js';
import type { KeyType } from './signature.js';

/** RSA: PKCS#1 v1.5 over the data. Ed25519: PureEdDSA over SHA-256(data) (RFC 8463 §3). */
export function signHeaderData(keyType: KeyType, hash: HashAlgorithm, key: KeyObject, data: Buffer): Buffer {
  if (keyType === 'ed25519') return sign(null, createHash('sha256').update(data).digest(), key);
  return sign(hash, data, key);
}

/** signHeaderData on libuv's thread pool. */
export function signHeaderDataAsync(keyType: KeyType, hash: HashAlgorithm, key: KeyObject, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, signature: Buffer): void => (err ? reject(err) : resolve(signature));
    if (keyType === 'ed25519') sign(null, createHash('sha256').update(data).digest(), key, done);
    else sign(hash, data, key, done);
  });
}

export function verifyHeaderData(keyType: KeyType, hash: HashAlgorithm, key: KeyObject, data: Buffer, signature: Buffer): boolean {
  try {
    if (keyType === 'ed25519') return verify(null, createHash('sha256').update(data).digest(), key, signature);
    return verify(hash, data, key, signature);
  } catch {
    // A malformed signature value (wrong length for the key) is a failed check, not a fault.
    return false;
  }
}

/**
 * Whether `signature` opens under `key` to a well-formed PKCS#1 v1.5 block:
 * made with the matching private key, whatever it signed. A signature that
 * does not verify but opens tells "the header hash differs" from "another
 * key signed this" (dkim-proxy explain).
 */
export function rsaPaddingValid(key: KeyObject, signature: Buffer): boolean {
  try {
    publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature);
    return true;
  } catch {
    return false;
  }
}
