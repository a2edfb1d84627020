/**
 * The two signature primitives over the canonical header data (RFC 6376 §3.7,
 * RFC 8463 §3). Node's crypto (OpenSSL) does the mathematics.
 */
import { createHash, sign, verify, type KeyObject } from 'node:crypto';
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
