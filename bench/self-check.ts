/**
 * What `[signing] self_check` costs: `out`'s processor on a 2 KB message
 * (RSA-2048), in-process on one core, with the check and without, in
 * alternating rounds of the same run. The check is one RSA verification and
 * one header hash per signature.
 *
 * Usage: node dist/bench/self-check.js   (SELF_CHECK_ROUNDS, default 5)
 */
import { rmSync } from 'node:fs';
import { loadConfig } from '../src/config/load.js';
import { processMessage } from '../src/pipeline/offline.js';
import { SigningProcessor } from '../src/pipeline/sign.js';
import { makeConfigDir } from '../test/helpers/config-dir.js';
import { zoneLookup } from '../test/helpers/fixtures.js';
import { median, message, pinSelf } from './harness.js';

pinSelf(0);
const rounds = Number(process.env['SELF_CHECK_ROUNDS'] ?? 5);
const dir = makeConfigDir('[domain."example.com"]\nselector = "bench"\n', [{ domain: 'example.com', selector: 'bench' }]);
try {
  const r = await loadConfig(dir.file, { cwd: dir.dir, env: {} });
  if (!r.ok) throw new Error(r.issues.map((i) => i.message).join('\n'));
  const config = r.config;
  const body = message(2048);
  const lookup = zoneLookup(dir.records);
  const perMessage = async (selfCheck: boolean, n: number): Promise<number> => {
    const signing = { ...config.signing, selfCheck };
    const p = new SigningProcessor({ signing: () => signing, lookup, now: () => Math.floor(Date.now() / 1000) });
    const start = process.cpuUsage();
    for (let k = 0; k < n; k++) await processMessage(p, body);
    const used = process.cpuUsage(start);
    return (used.user + used.system) / 1000 / n;
  };
  await perMessage(true, 300);
  await perMessage(false, 300);
  const on: number[] = [];
  const off: number[] = [];
  for (let k = 0; k < rounds; k++) {
    off.push(await perMessage(false, 1000));
    on.push(await perMessage(true, 1000));
  }
  const [a, b] = [median(off), median(on)];
  console.log(`out's processor, 2 KB, RSA-2048, one core, ${rounds} alternating rounds of 1,000 messages (medians)\n`);
  console.log(`without self_check  ${a.toFixed(3)} ms CPU per message`);
  console.log(`with self_check     ${b.toFixed(3)} ms CPU per message (+${(b - a).toFixed(3)} ms, ${((b / a - 1) * 100).toFixed(1)}%)`);
} finally {
  rmSync(dir.dir, { recursive: true, force: true });
}
