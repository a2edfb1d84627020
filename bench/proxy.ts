/**
 * Proxy throughput: `out` signing (RSA-2048) against, in the same run, the
 * same proxy with no signing rule (pass-through), and the two
 * baselines: a minimal Node proxy (smtp-server in, SMTP client out, 250 only
 * after the next hop's 250; bench/baseline-proxy.ts) unsigned and signing with
 * mailauth. Each proxy runs in its own process on one core (taskset -c 0); the
 * sink and this load generator share the other. A last row runs `out` with two
 * workers on both cores. The generator keeps its connections open and
 * pipelines MAIL/RCPT/DATA, as Postfix does. The sink offers what Postfix's
 * re-injection smtpd offers (PIPELINING, CHUNKING): our rows send BDAT to
 * it, the two minimal proxies DATA, as the issue describes them.
 * BENCH_SECONDS, BENCH_ROUNDS, BENCH_SIZES (bytes) and BENCH_CONNS (both
 * comma-separated) narrow a run, e.g. BENCH_SIZES=2048 BENCH_CONNS=32.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSigningKey } from '../src/dkim/index.js';
import { NextHop } from '../src/relay/client.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const pin = (core: number, cmd: string[]): string[] => (hasTaskset ? ['taskset', '-c', String(core), ...cmd] : cmd);
if (hasTaskset) spawnSync('taskset', ['-cp', '1', String(process.pid)]);

function start(cmd: string[], cwd?: string): ChildProcess {
  return spawn(cmd[0]!, cmd.slice(1), { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
}

/**
 * The first stdout line that matches; after it the child's output is drained
 * unread. (Scanning every later log line too made this process, which is also
 * the load generator, slower than the proxies it measured.)
 */
function firstLine(child: ChildProcess, pred: (l: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const out = child.stdout!;
    const timer = setTimeout(() => reject(new Error('child did not start in 15 s')), 15_000);
    const onData = (d: Buffer): void => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      const hit = lines.find(pred);
      if (hit === undefined) return;
      clearTimeout(timer);
      out.off('data', onData);
      out.resume();
      resolve(hit);
    };
    out.on('data', onData);
  });
}

function message(size: number): Buffer {
  const head = 'From: Bench <bench@example.com>\r\nTo: sink@example.net\r\nSubject: benchmark\r\nDate: Sun, 22 Nov 2026 12:00:00 +0000\r\nMessage-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n';
  const line = 'The quick brown fox jumps over the lazy dog, over and over again, all day.\r\n';
  return Buffer.from(head + line.repeat(Math.max(1, Math.round((size - head.length) / line.length))), 'latin1');
}

interface Run {
  readonly rate: number;
  readonly latencies: number[];
  readonly errors: number;
}

async function load(port: number, connections: number, body: Buffer, seconds: number): Promise<Run> {
  const latencies: number[] = [];
  let errors = 0;
  const until = Date.now() + seconds * 1000;
  const warmUntil = Date.now() + 300;
  let counted = 0;
  let countStart = 0;
  async function worker(): Promise<void> {
    const c = await NextHop.open({ host: '127.0.0.1', port, name: 'bench.test', timeoutMs: 30_000 });
    while (Date.now() < until) {
      const t0 = process.hrtime.bigint();
      const [mail, rcpt, data] = await c.pipeline(['MAIL FROM:<bench@example.com>', 'RCPT TO:<sink@example.net>', 'DATA']);
      const done = data!.code === 354 ? (await c.body([body], 1))[0]! : data!;
      if (mail!.code !== 250 || rcpt!.code !== 250 || done.code !== 250) errors++;
      const now = Date.now();
      if (now >= warmUntil) {
        if (countStart === 0) countStart = now;
        counted++;
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }
    await c.quit();
  }
  await Promise.all(Array.from({ length: connections }, worker));
  return { rate: counted / ((Date.now() - countStart) / 1000), latencies, errors };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

const list = (name: string, fallback: number[]): number[] => (process.env[name] ? process.env[name]!.split(',').map(Number) : fallback);

async function main(): Promise<void> {
  const seconds = Number(process.env['BENCH_SECONDS'] ?? 2);
  const rounds = Number(process.env['BENCH_ROUNDS'] ?? 3);
  const dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-bench-'));
  mkdirSync(join(dir, 'keys', 'example.com'), { recursive: true });
  writeFileSync(join(dir, 'keys', 'example.com', 'bench.key'), generateSigningKey('rsa-2048').pem, { mode: 0o600 });
  const sink = start(pin(1, [process.execPath, join(ROOT, 'dist/bench/sink.js')]));
  const sinkPort = Number(await firstLine(sink, (l) => /^\d+$/.test(l)));
  const proxies: { name: string; child: ChildProcess; port: number }[] = [];
  for (const mode of ['none', 'mailauth'] as const) {
    const child = start(pin(0, [process.execPath, join(ROOT, 'dist/bench/baseline-proxy.js'), mode, String(sinkPort), join(dir, 'keys', 'example.com', 'bench.key')]));
    const port = Number(await firstLine(child, (l) => /^\d+$/.test(l)));
    proxies.push({ name: mode === 'none' ? 'minimal node proxy' : 'minimal + mailauth', child, port });
  }
  const variants = [
    ['pass-through', '', 1],
    ['out (rsa-2048)', '[domain."example.com"]\nselector = "bench"\n', 1],
    ['out, 2 workers', '[domain."example.com"]\nselector = "bench"\n', 2],
  ] as const;
  for (const [name, signing, workers] of variants) {
    const file = join(dir, `${name.replace(/\W/g, '')}.toml`);
    writeFileSync(file, `workers = ${workers}\n[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sinkPort}"\nmax_connections = 1000\n${signing}`);
    // One worker is pinned to core 0; two workers get both cores (shared with the generator and sink).
    const cmd = [process.execPath, join(ROOT, 'dist/src/cli/main.js'), 'run', '--config', file, '--log-level', 'info'];
    const child = start(workers === 1 ? pin(0, cmd) : cmd, dir);
    const line = await firstLine(child, (l) => l.includes('"msg":"listening"'));
    const port = Number(/"listen":"[^"]*:(\d+)"/.exec(line)![1]);
    proxies.push({ name, child, port });
  }
  console.log(
    `dkim-proxy proxy benchmark · node ${process.version} · proxy on one core${hasTaskset ? ' (taskset -c 0)' : ' (taskset unavailable: not pinned)'} · per-message info logging on\n` +
      `${rounds} interleaved rounds of ${seconds} s per proxy per cell (this machine's speed drifts by ±20%): msg/s is the median round with the range, ` +
      `latencies are over all rounds, and the ratios are medians of same-round ratios.\n`,
  );
  const rows: string[][] = [['size', 'conns', 'proxy', 'msg/s', 'range', 'p50 ms', 'p99 ms', 'errors', 'vs pass-through', 'vs mailauth']];
  for (const size of list('BENCH_SIZES', [2048, 65536])) {
    const body = message(size);
    for (const conns of list('BENCH_CONNS', [8, 32, 64])) {
      const runs = new Map<string, Run[]>(proxies.map((p) => [p.name, []]));
      for (let round = 0; round < rounds; round++) {
        // A different order each round, so no proxy always follows the same one.
        const order = proxies.map((_, k) => proxies[(k + round) % proxies.length]!);
        for (const p of order) runs.get(p.name)!.push(await load(p.port, conns, body, seconds));
      }
      const ratio = (name: string, reference: string): number => median(runs.get(name)!.map((r, k) => r.rate / runs.get(reference)![k]!.rate));
      for (const p of proxies) {
        const rs = runs.get(p.name)!;
        const rates = rs.map((r) => r.rate);
        const latencies = rs.flatMap((r) => r.latencies).sort((a, b) => a - b);
        const ours = !p.name.startsWith('minimal') && p.name !== 'pass-through';
        rows.push([
          `${size / 1024} KB`,
          String(conns),
          p.name,
          median(rates).toFixed(0),
          `${Math.min(...rates).toFixed(0)}-${Math.max(...rates).toFixed(0)}`,
          percentile(latencies, 50).toFixed(1),
          percentile(latencies, 99).toFixed(1),
          String(rs.reduce((n, r) => n + r.errors, 0)),
          p.name === 'pass-through' ? '-' : `${(ratio(p.name, 'pass-through') * 100).toFixed(0)}%`,
          ours ? `${ratio(p.name, 'minimal + mailauth').toFixed(2)}x` : '-',
        ]);
      }
    }
  }
  const widths = rows[0]!.map((_, k) => Math.max(...rows.map((r) => r[k]!.length)));
  for (const r of rows) console.log(r.map((c, k) => (k < 3 ? c.padEnd(widths[k]!) : c.padStart(widths[k]!))).join('  '));
  for (const p of proxies) p.child.kill('SIGTERM');
  sink.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}

await main();
