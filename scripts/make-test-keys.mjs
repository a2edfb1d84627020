#!/usr/bin/env node
// Writes test/fixtures/keys/test-only-rsa-2048.pem: RSA-2048 keys (PKCS#1)
// that the tests take instead of making their own (test/helpers/test-keys.ts).
// Making one costs 160 ms of CPU here, and the suite needs dozens per run.
// They sign nothing but test mail, and are public: never use them for real.
//
// Usage: node scripts/make-test-keys.mjs [COUNT]   (default 48)
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const count = Number(process.argv[2] ?? 48);
const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures', 'keys', 'test-only-rsa-2048.pem');
const pems = [];
for (let k = 0; k < count; k++) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  pems.push(privateKey.export({ format: 'pem', type: 'pkcs1' }).toString());
}
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, pems.join(''));
console.log(`${file}: ${count} keys`);
