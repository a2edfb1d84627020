/**
 * `in` with SPF, DKIM, DMARC and ARC, against itself with DKIM only and against a
 * proxy doing the same checks with mailauth's authenticate(): 2 KB messages
 * signed with RSA-2048, 32 connections, each proxy alone on core 0 (one
 * worker), the load generator and sink on core 1, DNS from dnsmasq on
 * loopback. Rows, in the same run:
 *   - in, DKIM only (checks = ["dkim"]), keys cached;
 *   - in, all checks, warm: every answer cached;
 *   - in, all checks, cold: cache_ttl = 0, every lookup goes to dnsmasq;
 *   - mailauth authenticate() (smtp-server in, our relay out), every lookup to dnsmasq;
 *   - for scale, `in` with no checks, and that baseline harness with no checks:
 *     what the listener, the relay and the log cost before any check runs.
 * Ratios are what counts: the machine's speed drifts between runs. Each row
 * is measured at its steady state (bench/harness.ts `settle`), and its first
 * 2 s are shown beside it.
 *
 * Usage: node dist/bench/inbound.js   (INBOUND_SECONDS, default 6; INBOUND_ROUNDS, default 3)
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatKeyRecord, parsePrivateKey, signMessage } from '../src/dkim/index.js';
import { startDnsmasq } from '../test/helpers/dns-server.js';
import { firstLine, median, message, pin, pinSelf, ROOT, runRows, start, startBenchSink, startDaemon, writeBenchKey, type BenchRow } from './harness.js';

pinSelf(1);
const seconds = Number(process.env['INBOUND_SECONDS'] ?? 6);
const rounds = Number(process.env['INBOUND_ROUNDS'] ?? 3);
const dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-inbound-'));
const children: ChildProcess[] = [];
const keyFile = writeBenchKey(dir);
const parsed = parsePrivateKey(readFileSync(keyFile));
if (!parsed.ok) throw new Error(parsed.message);
const dns = await startDnsmasq(
  new Map([
    ['bench._domainkey.example.com', [formatKeyRecord(parsed.key.key)]],
    // The load generator connects from 127.0.0.1 with MAIL FROM bench@example.com: SPF and DMARC pass.
    ['example.com', ['v=spf1 ip4:127.0.0.1 -all']],
    ['_dmarc.example.com', ['v=DMARC1; p=reject']],
  ]),
  ['example.com'],
  undefined,
  // As a zone's records would: the warm rows then answer from the cache.
  300,
);
try {
  const plain = message(2048);
  const body = Buffer.concat([Buffer.from(signMessage(plain, [{ domain: 'example.com', selector: 'bench', key: parsed.key, algorithm: 'rsa-sha256', canonicalization: { header: 'relaxed', body: 'relaxed' } }], Math.floor(Date.now() / 1000)).join(''), 'latin1'), plain]);
  const { child: sink, port: sinkPort } = await startBenchSink();
  children.push(sink);

  const ours = async (name: string, inExtra: string, dnsExtra: string): Promise<{ child: ChildProcess; port: number }> => {
    const file = join(dir, `${name}.toml`);
    writeFileSync(file, `workers = 1\n[in]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sinkPort}"\nmax_connections = 1000\nmax_connections_per_client = 1000\nauthserv_id = "bench.test"\n${inExtra}\n[dns]\nservers = ["${dns.server}"]\n${dnsExtra}\n`);
    return startDaemon(pin(0, [process.execPath, join(ROOT, 'dist/src/cli/main.js'), 'run', '--config', file, '--log-level', 'info']), dir);
  };
  const baseline = async (mode: 'authenticate' | 'none'): Promise<{ child: ChildProcess; port: number }> => {
    const child = start(pin(0, [process.execPath, join(ROOT, 'dist/bench/baseline-proxy.js'), mode, 'ours', String(sinkPort)]));
    return { child, port: Number(await firstLine(child, (l) => /^\d+$/.test(l))) };
  };
  process.env['BENCH_DNS'] = dns.server;

  const rows: BenchRow[] = [
    { name: 'in, DKIM only', body, start: () => ours('dkim', 'checks = ["dkim"]', '') },
    { name: 'in, all checks (SPF+DKIM+DMARC+ARC), warm', body, start: () => ours('warm', '', '') },
    { name: 'in, all checks, cold (every lookup to DNS)', body, start: () => ours('cold', '', 'cache_ttl = 0\nnegative_ttl = 0') },
    { name: 'mailauth authenticate() baseline', body, start: () => baseline('authenticate') },
    // Where the floor is: our listener and relay with no check at all, and the bare baseline harness.
    { name: 'in, no checks (checks = [])', body, start: () => ours('none', 'checks = []', '') },
    { name: 'pass-through harness, no checks', body, start: () => baseline('none') },
  ];
  const results = await runRows(rows, rounds, seconds, children);
  const base = median(results.get(rows[0]!.name)!.rate);
  const ma = median(results.get(rows[3]!.name)!.rate);
  console.log(`in, 2 KB signed (RSA-2048), 32 connections, one core, ${rounds} × ${seconds} s per row (medians)\n`);
  console.log('row                                               msg/s   p99 ms  CPU ms/msg  vs DKIM-only  vs mailauth  errors   first 2 s CPU ms/msg  settled after');
  for (const row of rows) {
    const r = results.get(row.name)!;
    const rate = median(r.rate);
    console.log(
      `${row.name.padEnd(48)} ${rate.toFixed(0).padStart(6)} ${median(r.p99).toFixed(1).padStart(8)} ${median(r.cpu).toFixed(3).padStart(11)} ${(rate / base).toFixed(2).padStart(13)} ${(rate / ma).toFixed(2).padStart(12)} ${String(r.errors).padStart(7)}` +
        `   ${median(r.firstCpu).toFixed(3).padStart(20)}  ${`${median(r.settleSeconds)} s`.padStart(13)}`,
    );
  }
  const warm = results.get(rows[1]!.name)!;
  const met = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  const [vsDkim, vsMailauth, p99] = [median(warm.rate) / base, median(warm.rate) / ma, median(warm.p99)];
  console.log(`\n#14's goals, all checks warm: at least 80% of DKIM-only: ${(vsDkim * 100).toFixed(0)}%, ${met(vsDkim >= 0.8)}; at least 3x mailauth: ${vsMailauth.toFixed(2)}x, ${met(vsMailauth >= 3)}; p99 under 50 ms: ${p99.toFixed(1)} ms, ${met(p99 < 50)}`);
  const [goalCpu, none, harness] = [median(results.get(rows[3]!.name)!.cpu) / 3, median(results.get(rows[4]!.name)!.cpu), median(results.get(rows[5]!.name)!.cpu)];
  console.log(
    `3x mailauth would need ${goalCpu.toFixed(3)} ms CPU per message for all checks; \`in\` with no checks costs ${none.toFixed(3)}, the bare harness ${harness.toFixed(3)}, so the checks' share would be ${(goalCpu - none).toFixed(3)} (now ${(median(warm.cpu) - none).toFixed(3)}).`,
  );
  console.log('\nEach proxy is measured once its CPU per message has settled (two 2-s steps within 5%); the last columns show its first 2 s after start, while the JIT compiler was still at work.');
} finally {
  for (const c of children) c.kill('SIGTERM');
  await dns.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
