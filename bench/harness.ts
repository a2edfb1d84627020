/**
 * What the benchmarks share: pinning to cores, starting processes and waiting
 * for their first line, the test message, and the load generator (open
 * connections that pipeline MAIL/RCPT/DATA as Postfix does, optionally at a
 * fixed offered rate) with the proxy's CPU time read from /proc.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSigningKey } from '../src/dkim/index.js';
import { NextHop } from '../src/relay/client.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
export const pin = (core: number, cmd: string[]): string[] => (hasTaskset ? ['taskset', '-c', String(core), ...cmd] : cmd);

export function start(cmd: string[], cwd?: string): ChildProcess {
  return spawn(cmd[0]!, cmd.slice(1), { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
}

/**
 * The first stdout line that matches; after it the child's output is drained
 * unread. (Scanning every later log line too made this process, which is also
 * the load generator, slower than the proxies it measured.)
 */
export function firstLine(child: ChildProcess, pred: (l: string) => boolean): Promise<string> {
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

export function message(size: number): Buffer {
  const head = 'From: Bench <bench@example.com>\r\nTo: sink@example.net\r\nSubject: benchmark\r\nDate: Sun, 22 Nov 2026 12:00:00 +0000\r\nMessage-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n';
  const line = 'The quick brown fox jumps over the lazy dog, over and over again, all day.\r\n';
  return Buffer.from(head + line.repeat(Math.max(1, Math.round((size - head.length) / line.length))), 'latin1');
}

export interface Run {
  readonly rate: number;
  readonly latencies: number[];
  readonly errors: number;
  /** The proxy process's CPU time per message over the counted part, where it could be read. */
  readonly cpuMs: number | undefined;
}

/** Clock ticks a second, the unit of /proc's CPU times. */
export const clockTicks = ((): number | undefined => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  return r.status === 0 && Number(r.stdout) > 0 ? Number(r.stdout) : undefined;
})();

/** Milliseconds of CPU (user + system) a process has used, from /proc; undefined where there is none. */
export function cpuTime(pid: number | undefined): number | undefined {
  if (pid === undefined || clockTicks === undefined) return undefined;
  try {
    // Fields after the ')' that closes the command name: utime and stime are the 12th and 13th.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
  } catch {
    return undefined;
  }
}

export interface LoadOptions {
  /** Messages per second offered in all, spread over the connections; unset: as fast as the proxy answers. */
  readonly rate?: number;
  /** The proxy's process, to read its CPU time. */
  readonly pid?: number;
}

export async function load(port: number, connections: number, body: Buffer, seconds: number, options: LoadOptions = {}): Promise<Run> {
  const latencies: number[] = [];
  let errors = 0;
  const started = Date.now();
  const until = started + seconds * 1000;
  const warmUntil = started + 300;
  let counted = 0;
  let countStart = 0;
  let cpuStart: number | undefined;
  let issued = 0;
  async function worker(): Promise<void> {
    const c = await NextHop.open({ host: '127.0.0.1', port, name: 'bench.test', timeoutMs: 30_000 });
    while (Date.now() < until) {
      if (options.rate) {
        // An open schedule: message k is due at k/rate, whichever connection is free.
        const wait = started + (issued++ * 1000) / options.rate - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      const t0 = process.hrtime.bigint();
      const [mail, rcpt, data] = await c.pipeline(['MAIL FROM:<bench@example.com>', 'RCPT TO:<sink@example.net>', 'DATA']);
      const done = data!.code === 354 ? (await c.body([body], 1))[0]! : data!;
      if (mail!.code !== 250 || rcpt!.code !== 250 || done.code !== 250) errors++;
      const now = Date.now();
      if (now >= warmUntil) {
        if (countStart === 0) {
          countStart = now;
          cpuStart = cpuTime(options.pid);
        }
        counted++;
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }
    await c.quit();
  }
  await Promise.all(Array.from({ length: connections }, worker));
  const cpuEnd = cpuTime(options.pid);
  const cpuMs = cpuStart !== undefined && cpuEnd !== undefined && counted > 0 ? (cpuEnd - cpuStart) / counted : undefined;
  return { rate: counted / ((Date.now() - countStart) / 1000), latencies, errors, cpuMs };
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

/** Moves this process (the load generator) to `core`, away from the proxies on core 0. */
export function pinSelf(core: number): void {
  if (hasTaskset) spawnSync('taskset', ['-cp', String(core), String(process.pid)]);
}

/** A fresh RSA-2048 key where the bench configs find it (`keys/example.com/bench.key` under `dir`); returns its path. */
export function writeBenchKey(dir: string): string {
  mkdirSync(join(dir, 'keys', 'example.com'), { recursive: true });
  const file = join(dir, 'keys', 'example.com', 'bench.key');
  writeFileSync(file, generateSigningKey('rsa-2048').pem, { mode: 0o600 });
  return file;
}

/** The benchmark's next hop (bench/sink.ts) on core 1. */
export async function startBenchSink(): Promise<{ child: ChildProcess; port: number }> {
  const child = start(pin(1, [process.execPath, join(ROOT, 'dist/bench/sink.js')]));
  return { child, port: Number(await firstLine(child, (l) => /^\d+$/.test(l))) };
}

/** `dkim-proxy run` as `cmd` starts it (pinned or not), with the port of its first listener. */
export async function startDaemon(cmd: string[], cwd: string): Promise<{ child: ChildProcess; port: number }> {
  const child = start(cmd, cwd);
  const line = await firstLine(child, (l) => l.includes('"msg":"listening"'));
  return { child, port: Number(/"listen":"[^"]*:(\d+)"/.exec(line)![1]) };
}

/** One RSA-2048 signature's time on core 0, the floor under `out`'s signing cost. */
export function rsaSignatureMs(keyFile: string): number {
  const script =
    "const c=require('node:crypto');const k=c.createPrivateKey(require('node:fs').readFileSync(process.argv[1]));const d=Buffer.alloc(700,97);" +
    'for(let i=0;i<200;i++)c.sign("sha256",d,k);const t=process.hrtime.bigint();let n=0;' +
    'while(process.hrtime.bigint()-t<1000000000n){c.sign("sha256",d,k);n++}console.log(Number(process.hrtime.bigint()-t)/1e6/n)';
  const [cmd, ...args] = pin(0, [process.execPath, '-e', script, keyFile]);
  return Number(spawnSync(cmd!, args, { encoding: 'utf8' }).stdout);
}

export interface BenchRow {
  readonly name: string;
  /** The message this row sends (rows may differ in it: with and without an ARC chain). */
  readonly body: Buffer;
  readonly start: () => Promise<{ child: ChildProcess; port: number }>;
}

export interface RowResult {
  readonly rate: number[];
  readonly p99: number[];
  readonly cpu: number[];
  /** CPU per message in the first 2 s after start, while the JIT compiler is still at work. */
  readonly firstCpu: number[];
  /** Seconds of load until CPU per message settled. */
  readonly settleSeconds: number[];
  errors: number;
}

/**
 * Loads a freshly started proxy in 2 s steps until its CPU per message
 * settles: two steps in a row within 5% of each other (at least 3 steps, at
 * most 10). A path with more code (all of `in`'s checks) takes the JIT
 * compiler longer to settle than a short one: a fixed warm-up measured the
 * long path while it was still being compiled. Returns the first step's
 * figure and how long it took.
 */
export async function settle(port: number, connections: number, body: Buffer, pid: number): Promise<{ firstCpu: number; seconds: number }> {
  const steps: number[] = [];
  while (steps.length < 10) {
    const r = await load(port, connections, body, 2, { pid });
    steps.push(r.cpuMs ?? NaN);
    const [a, b] = [steps.at(-2), steps.at(-1)];
    if (steps.length >= 3 && a !== undefined && b !== undefined && Math.abs(b / a - 1) < 0.05) break;
  }
  return { firstCpu: steps[0]!, seconds: steps.length * 2 };
}

/**
 * Each row's proxy started, warmed up until it settles (JIT, caches) and loaded for `seconds`,
 * rows alternating within each round so that drift hits them alike.
 */
export async function runRows(rows: readonly BenchRow[], rounds: number, seconds: number, children: ChildProcess[], connections = 32): Promise<Map<string, RowResult>> {
  const results = new Map<string, RowResult>();
  for (let r = 0; r < rounds; r++) {
    for (const row of rows) {
      const p = await row.start();
      children.push(p.child);
      const warm = await settle(p.port, connections, row.body, p.child.pid!);
      const run = await load(p.port, connections, row.body, seconds, { pid: p.child.pid! });
      p.child.kill('SIGTERM');
      const sorted = [...run.latencies].sort((a, b) => a - b);
      const acc = results.get(row.name) ?? { rate: [], p99: [], cpu: [], firstCpu: [], settleSeconds: [], errors: 0 };
      acc.firstCpu.push(warm.firstCpu);
      acc.settleSeconds.push(warm.seconds);
      acc.rate.push(run.rate);
      acc.p99.push(percentile(sorted, 99));
      acc.cpu.push(run.cpuMs ?? NaN);
      acc.errors += run.errors;
      results.set(row.name, acc);
    }
  }
  return results;
}
