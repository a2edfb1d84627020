/** The real `dkim-proxy run` process, with its JSON log lines collected and awaitable. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { ROOT } from './fixtures.js';

export interface Daemon {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[];
  /** Resolves with the first log line matching, within `timeoutMs` (10 s). */
  waitFor(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** The port of the first `listening` line for `kind`. */
  port(kind: 'out' | 'in'): Promise<number>;
  /** SIGTERM, then the exit code (SIGKILL after 15 s). */
  stop(): Promise<number | null>;
}

export function startDaemon(configFile: string, cwd: string, extraArgs: string[] = []): Daemon {
  return startNode([join(ROOT, 'dist/src/cli/main.js'), 'run', '--config', configFile, ...extraArgs], cwd);
}

/** Node with these arguments (a script and its options, e.g. a unit file's ExecStart); stdout must be JSON lines. */
export function startNode(args: string[], cwd: string): Daemon {
  const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  let buffer = '';
  child.stdout!.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) !== -1) {
      const l = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
      buffer = buffer.slice(nl + 1);
      lines.push(l);
      for (const w of [...waiters]) if (w.pred(l)) waiters.splice(waiters.indexOf(w), 1) && w.resolve(l);
    }
  });
  child.stderr!.on('data', (d: Buffer) => lines.push({ stderr: d.toString() }));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const daemon: Daemon = {
    child,
    lines,
    waitFor(pred, timeoutMs = 10_000) {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no such log line within ${timeoutMs} ms; got:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`)), timeoutMs);
        waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      });
    },
    async port(kind) {
      const l = await daemon.waitFor((x) => x['msg'] === 'listening' && x['kind'] === kind);
      return Number(String(l['listen']).split(':').pop());
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const [code] = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  return daemon;
}
