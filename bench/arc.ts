/**
 * ARC's cost, in the same run, each proxy alone on core 0 (one worker), load
 * and sink on core 1, keys from dnsmasq on loopback; 2 KB messages signed by
 * example.com with RSA-2048, 32 connections:
 *   - in (all checks) on the message without ARC sets, and on the same
 *     message with a 3-hop chain (three sealers, three keys): validation
 *     costs one AMS body hash (shared with DKIM), one AMS and three seal
 *     RSA verifications, and three more key lookups (cached);
 *   - the same bytes without a chain (padding fields), and the chain with
 *     ARC left out of the checks, which tell the chain's size from its checks;
 *   - out signing only, and out signing and sealing: two more RSA
 *     signatures (AMS and AS) per message.
 * Ratios are what counts: the machine's speed drifts between runs.
 *
 * Usage: node dist/bench/arc.js   (ARC_SECONDS, default 6; ARC_ROUNDS, default 2)
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PreparedSealer } from '../src/arc/seal.js';
import { formatKeyRecord, generateSigningKey, parsePrivateKey, signMessage } from '../src/dkim/index.js';
import { seal, withResults } from '../test/helpers/arc.js';
import { startDnsmasq } from '../test/helpers/dns-server.js';
import { median, message, pin, pinSelf, ROOT, rsaSignatureMs, runRows, startBenchSink, startDaemon, writeBenchKey, type BenchRow } from './harness.js';

pinSelf(1);
const seconds = Number(process.env['ARC_SECONDS'] ?? 6);
const rounds = Number(process.env['ARC_ROUNDS'] ?? 2);
const dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-arc-bench-'));
const children: ChildProcess[] = [];
const keyFile = writeBenchKey(dir);
const author = parsePrivateKey(readFileSync(keyFile));
if (!author.ok) throw new Error(author.message);
const hops = ['fwd1.example.net', 'lists.example.org', 'fwd2.example.net'].map((domain) => {
  const { pem } = generateSigningKey('rsa-2048');
  const k = parsePrivateKey(pem);
  if (!k.ok) throw new Error(k.message);
  mkdirSync(join(dir, 'keys', domain), { recursive: true });
  writeFileSync(join(dir, 'keys', domain, 'arc.key'), pem, { mode: 0o600 });
  return { domain, key: k.key, sealer: PreparedSealer.prepare({ domain, selector: 'arc', key: k.key, authservId: `mx.${domain}` }) };
});
const dns = await startDnsmasq(
  new Map([
    ['bench._domainkey.example.com', [formatKeyRecord(author.key.key)]],
    ['example.com', ['v=spf1 ip4:127.0.0.1 -all']],
    ['_dmarc.example.com', ['v=DMARC1; p=reject']],
    ...hops.map((h) => [`arc._domainkey.${h.domain}`, [formatKeyRecord(h.key.key)]] as [string, string[]]),
  ]),
  ['example.com', 'example.net', 'example.org'],
  undefined,
  300,
);
try {
  const now = Math.floor(Date.now() / 1000);
  const plain = message(2048);
  const signed = Buffer.concat([Buffer.from(signMessage(plain, [{ domain: 'example.com', selector: 'bench', key: author.key, algorithm: 'rsa-sha256', canonicalization: { header: 'relaxed', body: 'relaxed' } }], now).join(''), 'latin1'), plain]);
  let chained: Buffer = signed;
  for (const [k, h] of hops.entries()) chained = seal(withResults(chained, h.sealer.authservId, `arc=${k === 0 ? 'none' : 'pass'}; dkim=pass header.d=example.com`), h.sealer, now);
  // The same bytes without a chain: what the chain's size costs apart from its checks.
  const extra = chained.length - signed.length;
  const pad = Array.from({ length: Math.ceil(extra / 900) }, (_, k) => `X-Pad-${k}: ${'p'.repeat(Math.max(1, Math.min(888, extra - k * 900 - 12)))}\r\n`).join('');
  const padded = Buffer.concat([Buffer.from(pad, 'latin1'), signed]);
  const { child: sink, port: sinkPort } = await startBenchSink();
  children.push(sink);

  const daemon = async (name: string, toml: string): Promise<{ child: ChildProcess; port: number }> => {
    const file = join(dir, `${name}.toml`);
    writeFileSync(file, `workers = 1\n${toml}\n[dns]\nservers = ["${dns.server}"]\n`);
    return startDaemon(pin(0, [process.execPath, join(ROOT, 'dist/src/cli/main.js'), 'run', '--config', file, '--log-level', 'info']), dir);
  };
  const listener = (kind: 'in' | 'out', extra: string): string =>
    `[${kind}]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sinkPort}"\nmax_connections = 1000\nmax_connections_per_client = 1000\n${kind === 'in' ? 'authserv_id = "bench.test"\n' : ''}${extra}\n`;
  const out = (sealing: boolean): string =>
    `${listener('out', sealing ? 'arc_seal = true' : '')}[domain."example.com"]\nselector = "bench"\n${sealing ? '[arc]\ndomain = "lists.example.org"\nselector = "arc"\nauthserv_id = "bench.test"\n' : ''}`;
  // out seals what our in wrote: the A-R of bench.test, no chain (cv=none).
  const toOut = withResults(plain, 'bench.test', 'spf=pass smtp.mailfrom=bench@example.com; dkim=none; dmarc=none; arc=none');

  const rows: BenchRow[] = [
    { name: 'in, all checks, no ARC sets', body: signed, start: () => daemon('in-plain', listener('in', '')) },
    { name: 'in, all checks, 3-hop ARC chain', body: chained, start: () => daemon('in-arc', listener('in', '')) },
    { name: 'in, no ARC sets, padded to its size', body: padded, start: () => daemon('in-padded', listener('in', '')) },
    { name: 'in, 3-hop chain, checks without arc', body: chained, start: () => daemon('in-noarc', listener('in', 'checks = ["dkim", "spf", "dmarc"]')) },
    { name: 'out, signing', body: toOut, start: () => daemon('out-sign', out(false)) },
    { name: 'out, signing and sealing', body: toOut, start: () => daemon('out-seal', out(true)) },
  ];
  const results = await runRows(rows, rounds, seconds, children);
  const row = (name: string) => results.get(name)!;
  console.log(`ARC, 2 KB (RSA-2048), 32 connections, one core, ${rounds} × ${seconds} s per row (medians)\n`);
  console.log('row                                   msg/s   p99 ms  CPU ms/msg  vs its base  errors');
  for (const [k, r] of rows.entries()) {
    const res = row(r.name);
    const rate = median(res.rate);
    const pair = k === 0 || k === 4 ? '' : (rate / median(row(rows[k === 5 ? 4 : 0]!.name).rate)).toFixed(2);
    console.log(`${r.name.padEnd(36)} ${rate.toFixed(0).padStart(6)} ${median(res.p99).toFixed(1).padStart(8)} ${median(res.cpu).toFixed(3).padStart(11)} ${pair.padStart(13)} ${String(res.errors).padStart(7)}`);
  }
  const cpu = (name: string): number => median(row(name).cpu);
  console.log(`\nsealing adds ${(cpu('out, signing and sealing') - cpu('out, signing')).toFixed(3)} ms CPU per message; one RSA-2048 signature here: ${rsaSignatureMs(keyFile).toFixed(3)} ms`);
  console.log(`a 3-hop chain adds ${(cpu('in, all checks, 3-hop ARC chain') - cpu('in, all checks, no ARC sets')).toFixed(3)} ms CPU per message to in; validating it, apart from its size, ${(cpu('in, all checks, 3-hop ARC chain') - cpu('in, 3-hop chain, checks without arc')).toFixed(3)} ms`);
} finally {
  for (const c of children) c.kill('SIGTERM');
  await dns.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
