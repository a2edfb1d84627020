/**
 * This build against an earlier one (by default the commit before the
 * message pipeline: BEFORE_REV), side by side on one core in the same run
 * (bench/compare.ts): CPU per message of `out` (signing) and `in`
 * (verifying) at 2 KB and 64 KB, at an offered rate both carry, several fresh
 * runs a cell. A first cell sets this build against itself: the noise to
 * judge the others by.
 * Then the same cells like for like: B with what later issues added switched
 * off (self_check, the 7-bit scan; SPF, DMARC, ARC in `in`).
 * Then `out`'s CPU per message at saturation (2 KB, 32 connections) beside
 * one RSA-2048 signature on the same core: what the path costs beyond the
 * signature.
 *
 * BEFORE_AFTER_RUNS (default 4) runs a cell; BEFORE_AFTER_ONLY=TEXT keeps the
 * cells whose name holds TEXT (and the A/A cell); BEFORE_AFTER_ONLY=cost runs
 * only the cost beyond the signature.
 *
 * The earlier build is made in a git worktree under the temp directory
 * (node_modules linked to this one's), so this needs the repository's history.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstLine, load, median, message, pin, pinSelf, ROOT, rsaSignatureMs, start, startBenchSink, startDaemon, writeBenchKey } from './harness.js';

const REV = process.env['BEFORE_REV'] ?? '8191a55';

function buildBefore(rev: string): string {
  const commit = execFileSync('git', ['rev-parse', '--short', rev], { cwd: ROOT, encoding: 'utf8' }).trim();
  const dir = join(tmpdir(), `dkim-proxy-before-${commit}`);
  if (!existsSync(join(dir, 'dist/src/cli/main.js'))) {
    rmSync(dir, { recursive: true, force: true });
    execFileSync('git', ['worktree', 'prune'], { cwd: ROOT });
    execFileSync('git', ['worktree', 'add', '--detach', dir, commit], { cwd: ROOT, stdio: 'ignore' });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: dir, stdio: 'inherit' });
  }
  return join(dir, 'dist');
}

/** One compare.js run: the median over its rounds of B's CPU per message over A's. */
function compare(a: string, b: string, env: Record<string, string>): { median: number; rounds: number[] } {
  const out = execFileSync(process.execPath, [join(ROOT, 'dist/bench/compare.js'), a, b], { encoding: 'utf8', env: { ...process.env, ...env } });
  const m = /B\/A CPU per message: median ([\d.]+) \(rounds ([\d. ]+)\)/.exec(out);
  if (!m) throw new Error(`no result from compare.js:\n${out}`);
  return { median: Number(m[1]), rounds: m[2]!.trim().split(/\s+/).map(Number) };
}

interface Cost {
  readonly rsaMs: number;
  /**
   * CPU per message at saturation and msg/s: out; our pass-through (the same
   * proxy, no signing rule); the bare harness; the raw-socket floor, passing
   * through and signing.
   */
  readonly rows: Readonly<Record<'out' | 'pass' | 'bare' | 'floor' | 'floorSign', { readonly cpuMs: number; readonly rate: number }>>;
}

/**
 * `out` at saturation beside one RSA-2048 signature, and in the same rounds
 * the floor under it: our pass-through; the bare harness of
 * bench/baseline-proxy.ts (smtp-server in, our client out, nothing else);
 * and bench/floor-proxy.ts, raw sockets keeping our reply contract, passing
 * through and signing with our engine (the least any proxy of this contract
 * costs here, with and without the signature).
 */
async function costBeyondSignature(): Promise<Cost> {
  const dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-bench-cost-'));
  const children: ChildProcess[] = [];
  try {
    const keyFile = writeBenchKey(dir);
    const { child: sink, port: sinkPort } = await startBenchSink();
    children.push(sink);
    const proxy = async (name: string, signing: string): Promise<{ child: ChildProcess; port: number }> => {
      const config = join(dir, `${name}.toml`);
      writeFileSync(config, `workers = 1\n[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sinkPort}"\nmax_connections = 1000\n${signing}`);
      const started = await startDaemon(pin(0, [process.execPath, join(ROOT, 'dist/src/cli/main.js'), 'run', '--config', config, '--log-level', 'info']), dir);
      children.push(started.child);
      return started;
    };
    const out = await proxy('out', '[domain."example.com"]\nselector = "bench"\n');
    const pass = await proxy('pass', '');
    const script = async (args: string[]): Promise<{ child: ChildProcess; port: number }> => {
      const child = start(pin(0, [process.execPath, ...args]));
      children.push(child);
      return { child, port: Number(await firstLine(child, (l) => /^\d+$/.test(l))) };
    };
    const bare = await script([join(ROOT, 'dist/bench/baseline-proxy.js'), 'none', 'ours', String(sinkPort), keyFile]);
    const floor = await script([join(ROOT, 'dist/bench/floor-proxy.js'), 'none', String(sinkPort)]);
    const floorSign = await script([join(ROOT, 'dist/bench/floor-proxy.js'), 'sign', String(sinkPort), keyFile]);
    const body = message(2048);
    const all = [out, pass, bare, floor, floorSign];
    for (const p of all) await load(p.port, 32, body, 4);
    const runs = all.map(() => [] as { cpuMs: number; rate: number }[]);
    const rsa: number[] = [];
    for (let k = 0; k < 3; k++) {
      for (const [i, p] of all.entries()) {
        const r = await load(p.port, 32, body, 3, { pid: p.child.pid! });
        runs[i]!.push({ cpuMs: r.cpuMs ?? NaN, rate: r.rate });
      }
      rsa.push(rsaSignatureMs(keyFile));
    }
    const summary = (i: number): { cpuMs: number; rate: number } => ({ cpuMs: median(runs[i]!.map((r) => r.cpuMs)), rate: median(runs[i]!.map((r) => r.rate)) });
    return { rsaMs: median(rsa), rows: { out: summary(0), pass: summary(1), bare: summary(2), floor: summary(3), floorSign: summary(4) } };
  } finally {
    for (const c of children) c.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

pinSelf(1);
const before = buildBefore(REV);
const after = join(ROOT, 'dist');
console.log(`A = ${before} (${REV}), B = ${after}: CPU per message, B/A (median of rounds, and the rounds' range); < 1 is faster\n`);
const cells = [
  ['A/A: this build against itself (the noise)', after, after, { COMPARE_KIND: 'out' }],
  ['out, 2 KB', before, after, { COMPARE_KIND: 'out', COMPARE_SIZE: '2048' }],
  ['out, 64 KB', before, after, { COMPARE_KIND: 'out', COMPARE_SIZE: '65536' }],
  ['in, 2 KB', before, after, { COMPARE_KIND: 'in', COMPARE_SIZE: '2048' }],
  ['in, 64 KB', before, after, { COMPARE_KIND: 'in', COMPARE_SIZE: '65536' }],
  // What the later issues added (self_check, the 7-bit scan; SPF, DMARC and ARC in `in`) switched off in B: the same work on both sides.
  ['out, 2 KB, like for like', before, after, { COMPARE_KIND: 'out', COMPARE_SIZE: '2048', COMPARE_LIKE_FOR_LIKE: '1' }],
  ['out, 64 KB, like for like', before, after, { COMPARE_KIND: 'out', COMPARE_SIZE: '65536', COMPARE_LIKE_FOR_LIKE: '1' }],
  ['in, 2 KB, like for like', before, after, { COMPARE_KIND: 'in', COMPARE_SIZE: '2048', COMPARE_LIKE_FOR_LIKE: '1' }],
  ['in, 64 KB, like for like', before, after, { COMPARE_KIND: 'in', COMPARE_SIZE: '65536', COMPARE_LIKE_FOR_LIKE: '1' }],
] as const;
// Each run starts two fresh processes, and a process keeps the speed it drew
// (code placement, JIT choices) for its life: runs differ more than rounds
// within a run. So each cell is several runs, alternating which build starts
// first, and the figure is the median over runs.
const runs = Number(process.env['BEFORE_AFTER_RUNS'] ?? 4);
// BEFORE_AFTER_ONLY="like for like": only the cells whose name holds it, and the A/A cell to judge them by.
const only = process.env['BEFORE_AFTER_ONLY'];
// BEFORE_AFTER_ONLY=cost: none of them, only the cost beyond the signature below.
for (const [name, a, b, env] of cells.filter(([name], k) => only === undefined || (only !== 'cost' && (k === 0 || name.includes(only))))) {
  const ratios: number[] = [];
  for (let k = 0; k < runs; k++) {
    const settings = { COMPARE_REPS: process.env['COMPARE_REPS'] ?? '3', COMPARE_SECONDS: process.env['COMPARE_SECONDS'] ?? '3', ...env };
    // Like for like configures B only, so B stays B; otherwise the two swap places every other run.
    const swap = k % 2 === 1 && !('COMPARE_LIKE_FOR_LIKE' in env);
    ratios.push(swap ? 1 / compare(b, a, settings).median : compare(a, b, settings).median);
  }
  console.log(`${name.padEnd(44)} B/A ${median(ratios).toFixed(3)}  (${runs} runs: ${ratios.map((r) => r.toFixed(3)).join(' ')})`);
}
const cost = await costBeyondSignature();
const { out, pass, bare, floor, floorSign } = cost.rows;
const beyond = out.cpuMs - cost.rsaMs;
const signatures = (ms: number): string => `${ms.toFixed(3)} ms = ${(ms / cost.rsaMs).toFixed(2)} signatures`;
console.log(
  `\nout at saturation, 2 KB, 32 connections, one core: ${out.rate.toFixed(0)} msg/s, ${out.cpuMs.toFixed(3)} ms CPU per message; one RSA-2048 signature ${cost.rsaMs.toFixed(3)} ms;` +
    ` beyond it ${signatures(beyond)} (target: 0.25); out runs at ${((out.rate * cost.rsaMs) / 10).toFixed(0)}% of the core's RSA floor (${(1000 / cost.rsaMs).toFixed(0)} signatures/s)`,
);
// The target counts the SMTP in and out too: what they cost alone, measured in the same rounds.
console.log(
  `  the floor under that, at its own saturation: our pass-through (no signing rule) ${signatures(pass.cpuMs)} (${pass.rate.toFixed(0)} msg/s); ` +
    `the bare harness (smtp-server in, our client out) ${signatures(bare.cpuMs)} (${bare.rate.toFixed(0)} msg/s); ` +
    `signing beyond the signature and the pass-through ${signatures(beyond - pass.cpuMs)}`,
);
console.log(
  `  raw sockets with our reply contract (bench/floor-proxy.ts): passing through ${signatures(floor.cpuMs)} (${floor.rate.toFixed(0)} msg/s); ` +
    `signing with our engine, beyond the signature ${signatures(floorSign.cpuMs - cost.rsaMs)} (${floorSign.rate.toFixed(0)} msg/s, ${((floorSign.rate * cost.rsaMs) / 10).toFixed(0)}% of the RSA floor)`,
);
process.exit(0);
