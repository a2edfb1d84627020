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
export function cli(args: string[], input?: string | Buffer, cwd: string = ROOT): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { timeout: 30_000, encoding: 'latin1', cwd }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
    child.stdin!.end(input ?? '');
  });
}
