/**
 * Proxy throughput: `out` signing (RSA-2048) against, in the same run, the
 * same proxy with no signing rule (our pass-through) and the minimal Node
 * proxies of bench/baseline-proxy.ts (smtp-server in, an SMTP client out, 250
 * only after the next hop's 250), unsigned and signing with mailauth:
 * - with a pooled nodemailer transport out: the issue's baselines, close to
 *   its figures here (2,100-4,800 and 450-790 msg/s against 2,400 and 500);
 * - with our own pipelining client out: much faster, so harder, baselines.
 * Each proxy runs in its own process on one core (taskset -c 0); the sink and
 * this load generator share the other. A last row runs `out` with two
 * workers on both cores. The generator keeps its connections open and
 * pipelines MAIL/RCPT/DATA, as Postfix does. The sink offers what Postfix's
 * re-injection smtpd offers (PIPELINING, CHUNKING): our rows send BDAT to
 * it, the minimal proxies DATA.
 * A last table sets `out` against our pass-through at one offered rate both
 * can carry: the difference in CPU per message is what signing costs, beside
 * one RSA-2048 signature timed on the same core.
 * Then #3's goals at 2 KB and 32 connections, each with its verdict.
 * BENCH_SECONDS, BENCH_ROUNDS, BENCH_WARMUP (s), BENCH_SIZES (bytes) and
 * BENCH_CONNS (both comma-separated) narrow a run, e.g. BENCH_SIZES=2048
 * BENCH_CONNS=32.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clockTicks, firstLine, hasTaskset, load, median, message, percentile, pin, pinSelf, ROOT, rsaSignatureMs, start, startBenchSink, startDaemon, writeBenchKey, type Run } from './harness.js';

pinSelf(1);

// The minimal proxies: row name, signing, client out.
const BASELINES = [
  ['node+nodemailer', 'none', 'nodemailer'],
  ['node+nodemailer+mailauth', 'mailauth', 'nodemailer'],
  ['node+our client', 'none', 'ours'],
  ['node+our client+mailauth', 'mailauth', 'ours'],
] as const;
const PASS = 'our pass-through';
// What `out` is divided by, in the table's last columns.
const REFERENCES = [
  ['/nodemailer', 'node+nodemailer'],
  ['/nodemailer+mailauth', 'node+nodemailer+mailauth'],
  ['/our pass-through', PASS],
  ['/our client+mailauth', 'node+our client+mailauth'],
] as const;

const list = (name: string, fallback: number[]): number[] => (process.env[name] ? process.env[name]!.split(',').map(Number) : fallback);

async function main(): Promise<void> {
  const seconds = Number(process.env['BENCH_SECONDS'] ?? 2);
  const rounds = Number(process.env['BENCH_ROUNDS'] ?? 3);
  const warmup = Number(process.env['BENCH_WARMUP'] ?? 4);
  const dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-bench-'));
  const keyFile = writeBenchKey(dir);
  const { child: sink, port: sinkPort } = await startBenchSink();
  // `pid` only where one process does all the work, so that its CPU time is the proxy's (taskset execs its command: same pid).
  const proxies: { name: string; child: ChildProcess; port: number; pid: number | undefined }[] = [];
  for (const [name, mode, client] of BASELINES) {
    const child = start(pin(0, [process.execPath, join(ROOT, 'dist/bench/baseline-proxy.js'), mode, client, String(sinkPort), keyFile]));
    const port = Number(await firstLine(child, (l) => /^\d+$/.test(l)));
    proxies.push({ name, child, port, pid: child.pid });
  }
  const variants = [
    [PASS, '', 1],
    ['out (rsa-2048)', '[domain."example.com"]\nselector = "bench"\n', 1],
    ['out, 2 workers', '[domain."example.com"]\nselector = "bench"\n', 2],
  ] as const;
  for (const [name, signing, workers] of variants) {
    const file = join(dir, `${name.replace(/\W/g, '')}.toml`);
    writeFileSync(file, `workers = ${workers}\n[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sinkPort}"\nmax_connections = 1000\n${signing}`);
    // One worker is pinned to core 0; two workers get both cores (shared with the generator and sink).
    const cmd = [process.execPath, join(ROOT, 'dist/src/cli/main.js'), 'run', '--config', file, '--log-level', 'info'];
    const { child, port } = await startDaemon(workers === 1 ? pin(0, cmd) : cmd, dir);
    proxies.push({ name, child, port, pid: workers === 1 ? child.pid : undefined });
  }
  console.log(
    `dkim-proxy proxy benchmark · node ${process.version} · proxy on one core${hasTaskset ? ' (taskset -c 0)' : ' (taskset unavailable: not pinned)'} · per-message info logging on\n` +
      `Each proxy first runs ${warmup} s unmeasured (the JIT compiler settles), then ${rounds} interleaved rounds of ${seconds} s per cell ` +
      `(this machine's speed drifts by ±20%): msg/s is the median round with the range, latencies are over all rounds, ` +
      `the ratios are medians of same-round ratios, and CPU is the proxy process's user+system time per message.\n`,
  );
  for (const p of proxies) await load(p.port, 32, message(2048), warmup);

  const cells = new Map<string, Map<string, Run[]>>();
  /** One RSA-2048 signature's time in each round of the goal's cell. */
  const goalRsaMs: number[] = [];
  const rows: string[][] = [['size', 'conns', 'proxy', 'msg/s', 'range', 'p50 ms', 'p99 ms', 'CPU ms/msg', 'errors', ...REFERENCES.map(([title]) => title)]];
  for (const size of list('BENCH_SIZES', [2048, 65536])) {
    const body = message(size);
    for (const conns of list('BENCH_CONNS', [8, 32, 64])) {
      const runs = new Map<string, Run[]>(proxies.map((p) => [p.name, []]));
      cells.set(`${size}/${conns}`, runs);
      for (let round = 0; round < rounds; round++) {
        // A different order each round, so no proxy always follows the same one.
        const order = proxies.map((_, k) => proxies[(k + round) % proxies.length]!);
        for (const p of order) runs.get(p.name)!.push(await load(p.port, conns, body, seconds, { ...(p.pid !== undefined ? { pid: p.pid } : {}) }));
        if (size === GOAL.size && conns === GOAL.conns) goalRsaMs.push(rsaSignatureMs(keyFile));
      }
      const ratio = (name: string, reference: string): number => median(runs.get(name)!.map((r, k) => r.rate / runs.get(reference)![k]!.rate));
      for (const p of proxies) {
        const rs = runs.get(p.name)!;
        const rates = rs.map((r) => r.rate);
        const latencies = rs.flatMap((r) => r.latencies).sort((a, b) => a - b);
        const cpu = rs.flatMap((r) => (r.cpuMs === undefined ? [] : [r.cpuMs]));
        const signer = p.name.startsWith('out');
        rows.push([
          `${size / 1024} KB`,
          String(conns),
          p.name,
          median(rates).toFixed(0),
          `${Math.min(...rates).toFixed(0)}-${Math.max(...rates).toFixed(0)}`,
          percentile(latencies, 50).toFixed(1),
          percentile(latencies, 99).toFixed(1),
          cpu.length > 0 ? median(cpu).toFixed(3) : '-',
          String(rs.reduce((n, r) => n + r.errors, 0)),
          ...REFERENCES.map(([, reference]) => {
            if (!signer) return '-';
            const r = ratio(p.name, reference);
            return reference.endsWith('mailauth') ? `${r.toFixed(2)}x` : `${(r * 100).toFixed(0)}%`;
          }),
        ]);
      }
    }
  }
  printTable(rows, 3);
  const goalCell = cells.get(`${GOAL.size}/${GOAL.conns}`);
  if (goalCell) printGoals(goalCell, goalRsaMs);

  // What signing costs: a proxy's CPU per message falls as its load rises
  // (more work per wake-up), so out at its own limit and our pass-through at
  // its much higher one are not comparable. At one offered rate both can
  // carry, the difference is the signing itself, set against one RSA
  // signature on the same core.
  const passThrough = proxies.find((p) => p.name === PASS)!;
  const out = proxies.find((p) => p.name === 'out (rsa-2048)')!;
  if (passThrough.pid !== undefined && out.pid !== undefined && clockTicks !== undefined) {
    const equal: string[][] = [['size', 'offered msg/s', 'our pass-through CPU ms/msg', 'out CPU ms/msg', 'signing ms/msg', 'RSA-2048 signature ms', 'signing - RSA ms']];
    for (const size of list('BENCH_SIZES', [2048, 65536])) {
      const measured = cells.get(`${size}/32`)?.get(out.name);
      // Below out's limit, so that both run at exactly this rate.
      const rate = Math.round(0.8 * median((measured ?? [await load(out.port, 32, message(size), seconds)]).map((r) => r.rate)));
      const cpu = { pass: [] as number[], out: [] as number[], rsa: [] as number[] };
      const achieved: number[] = [];
      for (let round = 0; round < rounds; round++) {
        for (const [p, into] of round % 2 ? ([[out, cpu.out], [passThrough, cpu.pass]] as const) : ([[passThrough, cpu.pass], [out, cpu.out]] as const)) {
          const r = await load(p.port, 32, message(size), seconds, { rate, pid: p.pid! });
          if (r.cpuMs !== undefined) into.push(r.cpuMs);
          achieved.push(r.rate);
        }
        cpu.rsa.push(rsaSignatureMs(keyFile));
      }
      const [pass, signed, rsa] = [median(cpu.pass), median(cpu.out), median(cpu.rsa)];
      // A round that fell behind the offered rate (the machine slowed down) is shown, not hidden.
      const slowest = Math.min(...achieved);
      const offered = slowest < 0.95 * rate ? `${rate} (slowest round ${slowest.toFixed(0)})` : String(rate);
      equal.push([`${size / 1024} KB`, offered, pass.toFixed(3), signed.toFixed(3), (signed - pass).toFixed(3), rsa.toFixed(3), (signed - pass - rsa).toFixed(3)]);
    }
    console.log(`\nSigning cost at equal load (32 connections, both proxies offered the same rate, ${rounds} interleaved rounds, medians):`);
    printTable(equal, 1);
  }
  for (const p of proxies) p.child.kill('SIGTERM');
  sink.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}

/**
 * #3's goals for `out` at 2 KB and 32 connections on one core. The 60% is
 * the issue's own arithmetic: a pass-through at 2,400 msg/s plus one RSA
 * signature at 3,600/s and nothing else gives 1/(1/2400 + 1/3600) = 1,440
 * msg/s, 60% of 2,400. That share falls as the pass-through gets faster
 * (1 / (1 + its rate x one signature's time)), so it is printed for each
 * round's pass-through beside out's share: what a signer that added only the
 * signature to that pass-through would reach.
 */
const GOAL = { size: 2048, conns: 32 };
const DKIMPROXY_MSG_S = 190;

function printGoals(runs: Map<string, Run[]>, rsaMs: readonly number[]): void {
  const rates = (name: string): number[] => runs.get(name)!.map((r) => r.rate);
  const [out, nodemailer, mailauth, ours] = [rates('out (rsa-2048)'), rates('node+nodemailer'), rates('node+nodemailer+mailauth'), rates(PASS)];
  const share = median(out.map((o, k) => o / nodemailer[k]!));
  const ceiling = median(nodemailer.map((n, k) => 1 / (1 + (n * rsaMs[k]!) / 1000)));
  const overOurs = median(out.map((o, k) => o * (1 / ours[k]! + rsaMs[k]! / 1000)));
  const timesMailauth = median(out.map((o, k) => o / mailauth[k]!));
  const latencies = runs.get('out (rsa-2048)')!.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const p99 = percentile(latencies, 99);
  const met = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
  console.log(`\n#3's goals for out at ${GOAL.size / 1024} KB and ${GOAL.conns} connections on one core (medians of same-round figures; RSA-2048 signature ${median(rsaMs).toFixed(3)} ms):`);
  printTable(
    [
      ['goal', 'measured', 'verdict'],
      ['at least 60% of the pass-through (smtp-server + nodemailer)', pct(share), met(share >= 0.6)],
      ['  what that pass-through plus one RSA signature, and nothing else, would reach', pct(ceiling), ''],
      ['  out as a share of what our own pass-through plus one RSA signature would do', pct(overOurs), ''],
      ['at least 2.5x the same proxy signing with mailauth', `${timesMailauth.toFixed(2)}x`, met(timesMailauth >= 2.5)],
      [`at least 7x DKIMproxy (the issue's ${DKIMPROXY_MSG_S} msg/s; not packaged for Debian 12)`, `${median(out).toFixed(0)} msg/s`, met(median(out) >= 7 * DKIMPROXY_MSG_S)],
      ['p99 under 50 ms', `${p99.toFixed(1)} ms`, met(p99 < 50)],
    ],
    1,
  );
}

/** Columns before `left` are text, aligned left; the rest are numbers. */
function printTable(rows: readonly string[][], left: number): void {
  const widths = rows[0]!.map((_, k) => Math.max(...rows.map((r) => r[k]!.length)));
  for (const r of rows) console.log(r.map((c, k) => (k < left ? c.padEnd(widths[k]!) : c.padStart(widths[k]!))).join('  '));
}

await main();
