/**
 * Engine throughput: dkim-proxy against mailauth 4.x on the same messages in
 * the same process, and against the floor Node's crypto sets (one RSA-2048
 * signature plus SHA-256 of the body). Single core: everything here is
 * synchronous or awaits nothing but itself.
 */
import { createHash, sign as cryptoSign } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import {
  formatKeyRecord,
  generateSigningKey,
  normalizeLineEnds,
  parsePrivateKey,
  signMessage,
  verifyMessage,
  type Canon,
  type KeyAnswer,
} from '../src/dkim/index.js';
import { makeMessage } from './messages.js';

type MailauthSign = (input: Buffer, options: unknown) => Promise<{ signatures: string; errors: unknown[] }>;
type MailauthVerify = (input: Buffer, options: unknown) => Promise<{ results: { status: { result: string } }[] }>;
const require = createRequire(import.meta.url);
const { dkimSign } = require('mailauth/lib/dkim/sign') as { dkimSign: MailauthSign };
const { dkimVerify } = require('mailauth/lib/dkim/verify') as { dkimVerify: MailauthVerify };

const generated = generateSigningKey('rsa-2048');
const parsed = parsePrivateKey(generated.pem);
if (!parsed.ok) throw new Error(parsed.message);
const key = parsed.key;
const record = formatKeyRecord(key.key);
const NOW = Math.floor(Date.now() / 1000);
const lookup = async (): Promise<KeyAnswer> => ({ kind: 'found', records: [record] });
const mailauthResolver = async (): Promise<string[][]> => [[record]];

const SIZES: [string, number][] = [
  ['2 KB', 2 * 1024],
  ['64 KB', 64 * 1024],
  ['1 MB', 1024 * 1024],
  ['10 MB', 10 * 1024 * 1024],
];

/** Runs `op` until `minMs` has passed (at least 3 times, at most 20000), returns ops/s. */
async function rate(op: () => unknown, minMs: number): Promise<number> {
  await op();
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while ((elapsed < minMs || n < 3) && n < 20000) {
    await op();
    n++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  }
  return (n * 1000) / elapsed;
}

const ours = {
  sign: (m: Buffer, c: Canon) =>
    signMessage(normalizeLineEnds(m), [{ domain: 'example.com', selector: 'sel', key, algorithm: 'rsa-sha256', canonicalization: { header: c, body: c } }], NOW),
  verify: (m: Buffer) => verifyMessage(normalizeLineEnds(m), lookup, NOW),
};

const theirs = {
  sign: (m: Buffer, c: Canon) =>
    dkimSign(m, {
      signTime: new Date(NOW * 1000),
      canonicalization: `${c}/${c}`,
      algorithm: 'rsa-sha256',
      signatureData: [{ signingDomain: 'example.com', selector: 'sel', privateKey: generated.pem, algorithm: 'rsa-sha256', canonicalization: `${c}/${c}` }],
    }),
  verify: (m: Buffer) => dkimVerify(m, { resolver: mailauthResolver, curTime: new Date(NOW * 1000) }),
};

function floor(m: Buffer): void {
  createHash('sha256').update(m).digest();
  cryptoSign('sha256', Buffer.from('header data of a few hundred octets'), key.key);
}

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  const minMs = Number(process.env['BENCH_MS'] ?? 1500);
  console.log(`dkim-proxy engine benchmark · node ${process.version} · RSA-2048 · ${minMs} ms per cell\n`);

  // Sanity: both sides produce signatures the other accepts, so we time real work.
  const probe = makeMessage(4096);
  const ourSig = Buffer.concat([Buffer.from(ours.sign(probe, 'relaxed').join(''), 'latin1'), probe]);
  const theirVerdict = (await theirs.verify(ourSig)).results[0]?.status.result;
  const theirSig = Buffer.concat([Buffer.from((await theirs.sign(probe, 'relaxed')).signatures, 'latin1'), probe]);
  const ourVerdict = (await ours.verify(theirSig))[0]?.result;
  if (theirVerdict !== 'pass' || ourVerdict !== 'pass') throw new Error(`cross-check failed: mailauth says ${theirVerdict}, we say ${ourVerdict}`);

  const rows: string[][] = [];
  for (const [label, size] of SIZES) {
    for (const kind of size >= 1024 * 1024 ? (['mixed', 'text'] as const) : (['mixed'] as const)) {
      const m = makeMessage(size, kind);
      const signedOurs = Buffer.concat([Buffer.from(ours.sign(m, 'relaxed').join(''), 'latin1'), m]);
      const f = await rate(() => floor(m), minMs);
      for (const c of ['simple', 'relaxed'] as const) {
        const o = await rate(() => ours.sign(m, c), minMs);
        const t = await rate(() => theirs.sign(m, c), minMs);
        rows.push([`${label}${kind === 'text' ? ' text' : ''}`, `sign ${c}`, fmt(o), fmt(t), `${fmt(o / t, 1)}x`, fmt((o * m.length) / 1e6), `${fmt(f / o, 2)}x`]);
      }
      const ov = await rate(() => ours.verify(signedOurs), minMs);
      const tv = await rate(() => theirs.verify(signedOurs), minMs);
      rows.push([`${label}${kind === 'text' ? ' text' : ''}`, 'verify relaxed', fmt(ov), fmt(tv), `${fmt(ov / tv, 1)}x`, fmt((ov * m.length) / 1e6), `${fmt(f / ov, 2)}x`]);
    }
  }
  const head = ['size', 'operation', 'ours msg/s', 'mailauth msg/s', 'ours/mailauth', 'ours MB/s', 'floor/ours'];
  const widths = head.map((h, k) => Math.max(h.length, ...rows.map((r) => r[k]!.length)));
  const line = (r: string[]): string => r.map((c, k) => (k < 2 ? c.padEnd(widths[k]!) : c.padStart(widths[k]!))).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  console.log('\nfloor = one RSA-2048 signature + SHA-256 of the message (Node crypto); floor/ours 1.00x = as fast as the floor.');

  // Memory: a child process per implementation, so peaks do not mix.
  const memoryScript = fileURLToPath(new URL('./memory.js', import.meta.url));
  for (const impl of ['ours', 'mailauth']) {
    const out = execFileSync(process.execPath, ['--expose-gc', memoryScript, impl], { encoding: 'utf8' });
    console.log(out.trim());
  }
}

await main();
