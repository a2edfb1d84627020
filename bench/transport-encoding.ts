/**
 * What `[out] transport_encoding = "7bit"` costs, in-process on one core, in
 * alternating rounds of the same run (medians), beside out's processor
 * signing the same message (RSA-2048, self_check on) for scale:
 *
 * - a 7-bit message pays only the receipt scan (2 KB and 64 KB);
 * - an 8-bit message pays the conversion: the scan, two splitter passes and
 *   the encoders (2 KB of UTF-8 text; 64 KB with a 48 KB binary attachment);
 * - how many messages of the test corpus the conversion changes.
 *
 * Usage: node dist/bench/transport-encoding.js   (TRANSPORT_ROUNDS, default 5)
 */
import { rmSync } from 'node:fs';
import { loadConfig } from '../src/config/load.js';
import { findBodyStart, parseHeaderBlock } from '../src/dkim/index.js';
import { SevenBitScan } from '../src/mime/scan.js';
import { processMessage } from '../src/pipeline/offline.js';
import { SigningProcessor } from '../src/pipeline/sign.js';
import { reencodeMessage } from '../src/pipeline/transport.js';
import { makeConfigDir } from '../test/helpers/config-dir.js';
import { corpus, largeEightBitMessage } from '../test/helpers/corpus.js';
import { zoneLookup } from '../test/helpers/fixtures.js';
import { median, message, pinSelf } from './harness.js';

pinSelf(0);
const rounds = Number(process.env['TRANSPORT_ROUNDS'] ?? 5);

function eightBitText(size: number): Buffer {
  const head = 'From: Bench <bench@example.com>\r\nTo: sink@example.net\r\nSubject: benchmark\r\nDate: Sun, 22 Nov 2026 12:00:00 +0000\r\nMessage-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n';
  const line = 'Grüße aus Köln: the quick brown fox jumps over the lazy dog, all day.\r\n';
  return Buffer.from(head + line.repeat(Math.max(1, Math.round((size - head.length) / Buffer.byteLength(line)))), 'utf8');
}

/** CPU ms per call of `work` over `n` calls. */
async function cpuMs(n: number, work: () => unknown): Promise<number> {
  const start = process.cpuUsage();
  for (let k = 0; k < n; k++) await work();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000 / n;
}

function scan(m: Buffer): unknown {
  const { headerEnd, bodyStart } = findBodyStart(m);
  const s = new SevenBitScan(parseHeaderBlock(m.toString('latin1', 0, headerEnd)));
  s.update(m.subarray(bodyStart));
  return s.end();
}

const dir = makeConfigDir('[domain."example.com"]\nselector = "bench"\n', [{ domain: 'example.com', selector: 'bench' }]);
try {
  const r = await loadConfig(dir.file, { cwd: dir.dir, env: {} });
  if (!r.ok) throw new Error(r.issues.map((i) => i.message).join('\n'));
  const config = r.config;
  const lookup = zoneLookup(dir.records);
  const processor = new SigningProcessor({ signing: () => config.signing, lookup, now: () => Math.floor(Date.now() / 1000) });
  const large = largeEightBitMessage(48 * 1024, 14 * 1024).message;
  const cases = [
    { name: '7-bit, 2 KB', m: message(2048) },
    { name: '7-bit, 64 KB', m: message(64 * 1024) },
    { name: '8-bit text, 2 KB', m: eightBitText(2048) },
    { name: '8-bit, 64 KB (48 KB binary attachment)', m: large },
  ];
  for (const c of cases) if ((await reencodeMessage(c.m) === undefined) !== c.name.startsWith('7-bit')) throw new Error(`${c.name}: not the case it says`);

  const n = (m: Buffer): number => (m.length > 10_000 ? 200 : 1000);
  for (const c of cases) {
    await cpuMs(100, () => processMessage(processor, c.m));
    await cpuMs(100, () => reencodeMessage(c.m));
  }
  console.log(`transport_encoding = "7bit", one core, ${rounds} alternating rounds (medians); out's processor signs the same message (RSA-2048, self_check on) for scale\n`);
  console.log('| message | signing (out\'s processor) | scan | conversion (scan, two passes, encoders) | conversion / signing |');
  console.log('|---|---|---|---|---|');
  for (const c of cases) {
    const sign: number[] = [];
    const scanned: number[] = [];
    const converted: number[] = [];
    for (let k = 0; k < rounds; k++) {
      sign.push(await cpuMs(n(c.m), () => processMessage(processor, c.m)));
      scanned.push(await cpuMs(n(c.m) * 5, () => scan(c.m)));
      converted.push(await cpuMs(n(c.m), () => reencodeMessage(c.m)));
    }
    const [s, sc, cv] = [median(sign), median(scanned), median(converted)];
    const seven = c.name.startsWith('7-bit');
    console.log(`| ${c.name} | ${s.toFixed(3)} ms | ${(sc * 1000).toFixed(1)} µs | ${seven ? 'none (relayed byte for byte)' : `${cv.toFixed(3)} ms`} | ${seven ? `scan ${((sc / s) * 100).toFixed(1)}%` : `${(cv / s).toFixed(2)}`} |`);
  }
  const all = await corpus();
  let changed = 0;
  for (const m of all) if ((await reencodeMessage(m.message)) !== undefined) changed++;
  console.log(`\ntest corpus (test/helpers/corpus.ts, built to exercise the conversion): ${changed} of ${all.length} messages converted, ${all.length - changed} left byte for byte`);
} finally {
  rmSync(dir.dir, { recursive: true, force: true });
}
