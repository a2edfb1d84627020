import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { SpoolError } from './replies.js';
import { Spool } from './spool.js';

const read = async (spool: Spool): Promise<Buffer> => {
  const r = await spool.reader();
  if (Array.isArray(r)) return Buffer.concat(r);
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

describe('spool', () => {
  it('keeps a body under the threshold in memory, and one over it in a private file that dispose removes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-test-spool-unit-'));
    try {
      const small = new Spool(100, dir);
      await small.write(Buffer.from('a'.repeat(60)));
      await small.write(Buffer.from('b'.repeat(40)));
      assert.equal(small.path, undefined);
      assert.equal((await read(small)).toString(), 'a'.repeat(60) + 'b'.repeat(40));
      await small.dispose();

      const big = new Spool(100, dir);
      await big.write(Buffer.from('c'.repeat(60)));
      await big.write(Buffer.from('d'.repeat(60)));
      const path = big.path!;
      assert.ok(path);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.equal(statSync(dirname(path)).mode & 0o777, 0o700);
      assert.equal(big.bytes, 120);
      assert.equal((await read(big)).toString(), 'c'.repeat(60) + 'd'.repeat(60));
      await big.dispose();
      assert.equal(existsSync(dirname(path)), false);
      await big.dispose(); // twice is harmless
      await assert.rejects(big.write(Buffer.from('x')), /already disposed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('throws SpoolError when the file cannot be made, and leaves nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-test-spool-gone-'));
    rmSync(dir, { recursive: true });
    const spool = new Spool(10, dir);
    await spool.write(Buffer.from('12345'));
    await assert.rejects(spool.write(Buffer.from('67890abcdef')), (err: unknown) => err instanceof SpoolError && /ENOENT/.test(err.message));
    await spool.dispose();
    assert.equal(existsSync(dir), false);
  });
});
