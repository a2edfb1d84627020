import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { generateSigningKey, parsePrivateKey, type KeyKind } from '../../src/dkim/index.js';
import { ROOT } from './fixtures.js';

/**
 * A private key for a test, as generateSigningKey gives one. An RSA-2048 key
 * is the next one of test/fixtures/keys/test-only-rsa-2048.pem not yet given
 * out in this process, so the keys a test process holds are all different,
 * as fresh ones would be; making one instead costs 160 ms of CPU, and the
 * suite needs dozens. Other kinds, and RSA-2048 once the file is used up,
 * are made anew.
 */
export function testKey(kind: KeyKind): { pem: string; key: KeyObject } {
  if (kind !== 'rsa-2048') return generateSigningKey(kind);
  pool ??= readFileSync(join(ROOT, 'test/fixtures/keys/test-only-rsa-2048.pem'), 'latin1').match(/-----BEGIN RSA PRIVATE KEY-----[^-]+-----END RSA PRIVATE KEY-----\n/g) ?? [];
  const pem = pool[given++];
  if (pem === undefined) return generateSigningKey(kind);
  const parsed = parsePrivateKey(pem);
  if (!parsed.ok) throw new Error(`test-only-rsa-2048.pem: ${parsed.message}`);
  return { pem, key: parsed.key.key };
}

let pool: string[] | undefined;
let given = 0;
