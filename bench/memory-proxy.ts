/**
 * Memory under many large messages at once: 64 connections each send a
 * 10 MB message through `out` (signing, one worker) at the same time. The
 * proxy keeps at most `spool_threshold` of each body in memory and spools the
 * rest, so its peak RSS stays under a bound far below the 640 MB in flight.
 * Reads VmHWM (the peak resident set) from /proc; prints the figures and
 * whether the bound held. Loopback only, bounded in time.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NextHop } from '../src/relay/client.js';
import { statusKb } from '../test/helpers/proc.js';
import { message, pin, pinSelf, ROOT, startBenchSink, startDaemon, writeBenchKey } from './harness.js';

/** The bound we state: the idle process plus 64 × 1 MB of bodies in memory, with room for buffers. */
export const RSS_BOUND_MB = 256;
const CONNECTIONS = 64;
const SIZE = 10 * 1024 * 1024;

export async function memoryUnderLoad(): Promise<{ idleMb: number; peakMb: number; seconds: number; failures: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-bench-mem-'));
  const children = [];
  try {
    writeBenchKey(dir);
    const { child: sink, port: sinkPort } = await startBenchSink();
    children.push(sink);
    const config = join(dir, 'proxy.toml');
    writeFileSync(
      config,
      `workers = 1\n[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sinkPort}"\nmax_connections = 200\nmax_connections_per_client = 100\nmax_message_bytes = "20M"\nspool_threshold = "1M"\nspool_dir = "${dir}"\n[domain."example.com"]\nselector = "bench"\n`,
    );
    const { child, port } = await startDaemon(pin(0, [process.execPath, join(ROOT, 'dist/src/cli/main.js'), 'run', '--config', config, '--log-level', 'info']), dir);
    children.push(child);
    const pid = child.pid!;
    await new Promise((r) => setTimeout(r, 500));
    const idleMb = statusKb(pid, 'VmRSS') / 1024;
    const body = message(SIZE);
    const started = Date.now();
    let failures = 0;
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async () => {
        const c = await NextHop.open({ host: '127.0.0.1', port, name: 'bench.test', timeoutMs: 120_000 });
        const [mail, rcpt, data] = await c.pipeline(['MAIL FROM:<bench@example.com>', 'RCPT TO:<sink@example.net>', 'DATA']);
        // In 1 MB pieces, as a client's socket would deliver them.
        const pieces = Array.from({ length: Math.ceil(body.length / (1 << 20)) }, (_, k) => body.subarray(k << 20, (k + 1) << 20));
        const done = data!.code === 354 ? (await c.body(pieces, 1))[0]! : data!;
        if (mail!.code !== 250 || rcpt!.code !== 250 || done.code !== 250) failures++;
        await c.quit();
      }),
    );
    return { idleMb, peakMb: statusKb(pid, 'VmHWM') / 1024, seconds: (Date.now() - started) / 1000, failures };
  } finally {
    for (const c of children) c.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  pinSelf(1);
  const r = await memoryUnderLoad();
  const held = r.peakMb <= RSS_BOUND_MB && r.failures === 0;
  console.log(
    `out, ${CONNECTIONS} concurrent ${SIZE / 1048576} MB messages (${(CONNECTIONS * SIZE) / 1048576} MB in flight), spool_threshold 1 MB: idle RSS ${r.idleMb.toFixed(0)} MB, peak RSS ${r.peakMb.toFixed(0)} MB (bound ${RSS_BOUND_MB} MB: ${held ? 'held' : 'NOT held'}), ${r.seconds.toFixed(1)} s, ${r.failures} not relayed`,
  );
  process.exit(held ? 0 : 1);
}
