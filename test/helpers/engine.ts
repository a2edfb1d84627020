import { formatKeyRecord, parsePrivateKey, signMessage, verifyMessage } from '../../src/dkim/index.js';
import type { DkimOutcome, SignRequest, SigningKey, VerifyOptions } from '../../src/dkim/index.js';
import { zoneLookup } from './fixtures.js';
import { testKey } from './test-keys.js';

export const NOW = 1_790_000_000;

function key(kind: 'rsa-2048' | 'ed25519'): SigningKey {
  const r = parsePrivateKey(testKey(kind).pem);
  if (!r.ok) throw new Error(r.message);
  return r.key;
}

/** One RSA and one ed25519 key per test process, published at sel._domainkey.example.com and ed._domainkey.example.com. */
export const testKeys = { rsa: key('rsa-2048'), ed25519: key('ed25519') };

export const zone = new Map<string, string[]>([
  ['sel._domainkey.example.com', [formatKeyRecord(testKeys.rsa.key)]],
  ['ed._domainkey.example.com', [formatKeyRecord(testKeys.ed25519.key)]],
]);

export function request(overrides: Partial<SignRequest> = {}): SignRequest {
  const algorithm = overrides.algorithm ?? 'rsa-sha256';
  return {
    domain: 'example.com',
    selector: algorithm === 'ed25519-sha256' ? 'ed' : 'sel',
    key: algorithm === 'ed25519-sha256' ? testKeys.ed25519 : testKeys.rsa,
    algorithm,
    canonicalization: { header: 'relaxed', body: 'relaxed' },
    ...overrides,
  };
}

/** Signs `message` (a latin1 string with CRLF) and returns the signed bytes. */
export function sign(message: string | Buffer, ...requests: Partial<SignRequest>[]): Buffer {
  const bytes = typeof message === 'string' ? Buffer.from(message, 'latin1') : message;
  const fields = signMessage(bytes, (requests.length ? requests : [{}]).map(request), NOW);
  return Buffer.concat([Buffer.from(fields.join(''), 'latin1'), bytes]);
}

export function verify(message: Buffer | string, options: VerifyOptions = {}, records = zone, now = NOW): Promise<DkimOutcome[]> {
  const bytes = typeof message === 'string' ? Buffer.from(message, 'latin1') : message;
  return verifyMessage(bytes, zoneLookup(records), now, options);
}

export const results = (outcomes: readonly DkimOutcome[]): string[] => outcomes.map((o) => o.result);

export const SAMPLE = [
  'From: Alice <alice@example.com>',
  'To: Bob <bob@example.net>',
  'Subject: Lunch',
  'Date: Sun, 22 Nov 2026 12:00:00 +0000',
  'Message-ID: <lunch-1@example.com>',
  'MIME-Version: 1.0',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'Shall we meet at noon?  ',
  '',
  'Alice',
  '',
].join('\r\n');
