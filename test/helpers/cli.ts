import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './fixtures.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real `dkim-proxy` command; bounded at 30 s. */
export function cli(args: string[], input?: string | Buffer, cwd: string = ROOT, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    // Colour only when a test asks for it: NO_COLOR or FORCE_COLOR from the caller's shell must not leak in.
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NO_COLOR' && k !== 'FORCE_COLOR'));
    const child = execFile(process.execPath, [CLI, ...args], { timeout: 30_000, encoding: 'latin1', cwd, env: { ...base, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
    child.stdin!.end(input ?? '');
  });
}
