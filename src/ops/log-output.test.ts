import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { TurnBufferedOutput } from './log-output.js';

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('TurnBufferedOutput', () => {
  it('holds the lines of one turn and writes them, in order, when the turn ends', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-log-'));
    const file = join(dir, 'log');
    const fd = openSync(file, 'w');
    try {
      const out = new TurnBufferedOutput(fd);
      out.write('one\n');
      out.write('two\n');
      out.write('three\n');
      assert.equal(readFileSync(file, 'utf8'), '', 'nothing written inside the turn');
      await turn();
      assert.equal(readFileSync(file, 'utf8'), 'one\ntwo\nthree\n');
      out.write('four\n');
      out.flush();
      assert.equal(readFileSync(file, 'utf8'), 'one\ntwo\nthree\nfour\n', 'flush writes at once');
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gets every line through a non-blocking pipe whose reader is slow, and what a process held when it exits', async () => {
    const module = fileURLToPath(new URL('./log-output.js', import.meta.url));
    // The child makes its stdout non-blocking (libuv does, for a pipe), then writes 4 MB in one turn and exits in the next.
    const script = `
      import { TurnBufferedOutput } from ${JSON.stringify(module)};
      process.stdout;
      const out = new TurnBufferedOutput(1);
      const line = 'x'.repeat(1000) + '\\n';
      for (let k = 0; k < 4096; k++) out.write(k + ' ' + line);
      setImmediate(() => { out.write('last\\n'); process.exit(0); });
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    // A slow reader: the pipe fills (64 KB) and the writer meets EAGAIN many times.
    child.stdout.on('data', (d: Buffer) => {
      chunks.push(d);
      child.stdout.pause();
      setTimeout(() => child.stdout.resume(), 1);
    });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 0);
    const lines = Buffer.concat(chunks).toString('utf8').split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 4097);
    assert.equal(lines.at(-1), 'last', 'the line held at exit was written');
    lines.slice(0, -1).forEach((l, k) => assert.ok(l.startsWith(`${k} x`), `line ${k} in order`));
  });

  it('goes on without its log when the reader closes the pipe, and says so once on stderr', async () => {
    const module = fileURLToPath(new URL('./log-output.js', import.meta.url));
    // The child writes a line a turn; once the parent has closed the pipe's read end it writes 50 more, then exits 0.
    const script = `
      import { TurnBufferedOutput } from ${JSON.stringify(module)};
      process.stdout;
      const out = new TurnBufferedOutput(1);
      out.write('first\\n');
      process.stdin.once('data', () => {
        let k = 0;
        const next = () => { out.write('line ' + k + '\\n'); if (++k < 50) setImmediate(next); else setImmediate(() => { process.stderr.write('alive\\n'); process.exit(0); }); };
        next();
      });
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const first = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString('utf8'))));
    assert.equal(first, 'first\n');
    child.stdout.destroy();
    child.stdin.end('go');
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 0, stderr);
    assert.equal(stderr.match(/log output \(fd 1\) was closed by its reader/g)?.length, 1, stderr);
    assert.match(stderr, /alive\n$/);
  });
});
