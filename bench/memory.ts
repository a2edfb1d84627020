/**
 * Peak memory added while signing a 10 MB message: peak RSS (getrusage)
 * minus the RSS of the same process idle with the message already loaded.
 */
import { createRequire } from 'node:module';
import { generateSigningKey, normalizeLineEnds, parsePrivateKey, signMessage } from '../src/dkim/index.js';
import { makeMessage } from './messages.js';

const impl = process.argv[2] ?? 'ours';
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

const generated = generateSigningKey('rsa-2048');
const parsed = parsePrivateKey(generated.pem);
if (!parsed.ok) throw new Error(parsed.message);
const size = 10 * 1024 * 1024;
const message = makeMessage(size);
const require = createRequire(import.meta.url);
const { dkimSign } = require('mailauth/lib/dkim/sign') as { dkimSign: (m: Buffer, o: unknown) => Promise<unknown> };

async function signOnce(): Promise<void> {
  if (impl === 'ours') {
    signMessage(normalizeLineEnds(message), [{ domain: 'example.com', selector: 'sel', key: parsed.ok ? parsed.key : (undefined as never), algorithm: 'rsa-sha256', canonicalization: { header: 'relaxed', body: 'relaxed' } }], 0);
  } else {
    await dkimSign(message, { signTime: new Date(), signatureData: [{ signingDomain: 'example.com', selector: 'sel', privateKey: generated.pem, algorithm: 'rsa-sha256', canonicalization: 'relaxed/relaxed' }] });
  }
}

// Warm up code paths with a small message, then settle.
for (let k = 0; k < 3; k++) await signOnce();
gc();
await new Promise((r) => setTimeout(r, 50));
gc();
const idle = process.memoryUsage().rss;
const peakBefore = process.resourceUsage().maxRSS * 1024;
for (let k = 0; k < 3; k++) await signOnce();
const peakAfter = process.resourceUsage().maxRSS * 1024;
const added = Math.max(0, peakAfter - idle);
const note = peakAfter === peakBefore ? ' (at most: the peak did not rise above start-up)' : '';
console.log(
  `memory ${impl.padEnd(8)} signing 10 MB: idle RSS ${(idle / 1048576).toFixed(1)} MB, peak ${(peakAfter / 1048576).toFixed(1)} MB, added ${(added / 1048576).toFixed(1)} MB = ${(added / size).toFixed(2)}x the message${note}`,
);
