/**
 * Compares two builds of the proxy for CPU per message, precisely enough to
 * see a 1-2% change on a machine whose speed drifts by ±20% from minute to
 * minute. Both run at the same time, pinned to the same core (0), and each is
 * offered the same fixed rate by its own generator on core 1, so any drift
 * hits both alike. Run against itself it reads 1.00 ± 0.01.
 *
 * Usage: node dist/bench/compare.js DIST_A DIST_B
 *   DIST_x is a build's dist/ directory (e.g. of a `git worktree` whose
 *   node_modules is linked to this one's). Environment: COMPARE_RATE (msg/s
 *   offered to each, default 600), COMPARE_REPS (5), COMPARE_SECONDS (4),
 *   COMPARE_SIZE (bytes, 2048), COMPARE_SIGN (1: RSA-2048 signing; 0: pass-through),
 *   COMPARE_KIND (out: signing, default; in: verifying a message signed with
 *   RSA-2048, its key served by dnsmasq on loopback and cached by the proxy),
 *   COMPARE_LIKE_FOR_LIKE (1: B runs without what came after the message
 *   pipeline: out with self_check off and transport_encoding = "preserve",
 *   in with checks = ["dkim"]; A's config has no such keys).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { formatKeyRecord, parsePrivateKey, signMessage } from '../src/dkim/index.js';
import { startDnsmasq, type TestDns } from '../test/helpers/dns-server.js';
import { load, median, message, pin, pinSelf, startBenchSink, startDaemon, writeBenchKey } from './harness.js';

pinSelf(1);

const [distA, distB] = process.argv.slice(2);
if (!distA || !distB) {
  console.error('usage: node dist/bench/compare.js DIST_A DIST_B');
  process.exit(64);
}
const rate = Number(process.env['COMPARE_RATE'] ?? 600);
const reps = Number(process.env['COMPARE_REPS'] ?? 5);
const seconds = Number(process.env['COMPARE_SECONDS'] ?? 4);
const plain = message(Number(process.env['COMPARE_SIZE'] ?? 2048));
const signing = process.env['COMPARE_SIGN'] !== '0';
const kind = process.env['COMPARE_KIND'] === 'in' ? 'in' : 'out';
const likeForLike = process.env['COMPARE_LIKE_FOR_LIKE'] === '1';

const dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-compare-'));
const children: ChildProcess[] = [];
let dns: TestDns | undefined;
let body = plain;
try {
  const keyFile = writeBenchKey(dir);
  const { child: sink, port: sinkPort } = await startBenchSink();
  children.push(sink);
  const config = join(dir, 'proxy.toml');
  if (kind === 'out') {
    writeFileSync(config, `workers = 1\n[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sinkPort}"\nmax_connections = 1000\n${signing ? '[domain."example.com"]\nselector = "bench"\n' : ''}`);
  } else {
    const parsed = parsePrivateKey(readFileSync(keyFile));
    if (!parsed.ok) throw new Error(parsed.message);
    dns = await startDnsmasq(new Map([['bench._domainkey.example.com', [formatKeyRecord(parsed.key.key)]]]), ['example.com']);
    const request = { domain: 'example.com', selector: 'bench', key: parsed.key, algorithm: 'rsa-sha256', canonicalization: { header: 'relaxed', body: 'relaxed' } } as const;
    body = Buffer.concat([Buffer.from(signMessage(plain, [request], Math.floor(Date.now() / 1000)).join(''), 'latin1'), plain]);
    writeFileSync(config, `workers = 1\n[in]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sinkPort}"\nmax_connections = 1000\nauthserv_id = "bench.test"\n[dns]\nservers = ["${dns.server}"]\n`);
  }
  // Like for like: B with the features that came after A switched off, so that the path itself is compared, not what it now does more.
  const configB = join(dir, 'proxy-b.toml');
  const text = readFileSync(config, 'utf8');
  const later = kind === 'out' ? text.replace('[out]\n', '[out]\ntransport_encoding = "preserve"\n') + '[signing]\nself_check = false\n' : text.replace('[in]\n', '[in]\nchecks = ["dkim"]\n');
  writeFileSync(configB, likeForLike ? later : text);
  const proxies = [];
  for (const [dist, file] of [[distA, config], [distB, configB]] as const) {
    const { child, port } = await startDaemon(pin(0, [process.execPath, join(resolve(dist), 'src/cli/main.js'), 'run', '--config', file, '--log-level', 'info']), dir);
    children.push(child);
    proxies.push({ port, pid: child.pid! });
  }
  const [a, b] = proxies as [(typeof proxies)[0], (typeof proxies)[0]];
  // Unmeasured first: the JIT compiler settles.
  await Promise.all([load(a.port, 16, body, 4, { rate }), load(b.port, 16, body, 4, { rate })]);
  console.log(`A = ${distA}\nB = ${distB}\n${kind === 'in' ? 'in, verifying one RSA-2048 signature' : signing ? 'out, signing' : 'out, pass-through'}, ${plain.length} octets, ${rate} msg/s offered to each, ${reps} × ${seconds} s\n`);
  const ratios: number[] = [];
  for (let k = 0; k < reps; k++) {
    const [ra, rb] = await Promise.all([load(a.port, 16, body, seconds, { rate, pid: a.pid }), load(b.port, 16, body, seconds, { rate, pid: b.pid })]);
    if (ra.cpuMs === undefined || rb.cpuMs === undefined) throw new Error('no CPU time: this needs /proc and getconf CLK_TCK');
    ratios.push(rb.cpuMs / ra.cpuMs);
    console.log(`round ${k + 1}: A ${ra.cpuMs.toFixed(3)} ms/msg at ${ra.rate.toFixed(0)}/s, B ${rb.cpuMs.toFixed(3)} ms/msg at ${rb.rate.toFixed(0)}/s, B/A ${(rb.cpuMs / ra.cpuMs).toFixed(3)}`);
  }
  console.log(`\nB/A CPU per message: median ${median(ratios).toFixed(3)} (rounds ${ratios.map((r) => r.toFixed(3)).join(' ')})`);
} finally {
  for (const c of children) c.kill('SIGTERM');
  await dns?.stop();
  rmSync(dir, { recursive: true, force: true });
}
// The killed children's pipes would otherwise keep this process waiting.
process.exit(0);
