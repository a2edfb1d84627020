/**
 * The body of a message in flight: held in memory up to a threshold, then in
 * a private temp file (0600, in a 0700 directory of its own) that `dispose`
 * removes whatever happened. Memory per message stays bounded.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { SpoolError } from './replies.js';

const TMP = tmpdir();

export class Spool {
  private readonly threshold: number;
  private readonly dir: string;
  private memory: Buffer[] = [];
  private memoryBytes = 0;
  private file: { path: string; dir: string; handle: FileHandle } | undefined;
  private disposed = false;
  bytes = 0;

  constructor(thresholdBytes: number, dir: string = TMP) {
    this.threshold = thresholdBytes;
    this.dir = dir;
  }

  /** Where the body is kept, for tests and logs. */
  get path(): string | undefined {
    return this.file?.path;
  }

  /** Throws SpoolError when the file cannot be made or written (disk full, directory gone). */
  async write(chunk: Buffer): Promise<void> {
    if (this.disposed) throw new Error('spool already disposed');
    this.bytes += chunk.length;
    if (!this.file && this.memoryBytes + chunk.length <= this.threshold) {
      // The stream's chunks are ours to keep: no copy.
      this.memory.push(chunk);
      this.memoryBytes += chunk.length;
      return;
    }
    try {
      await this.toFile(chunk);
    } catch (err) {
      throw new SpoolError(`cannot spool to ${this.file?.path ?? this.dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
  }

  private async toFile(chunk: Buffer): Promise<void> {
    if (!this.file) {
      const dir = await mkdtemp(join(this.dir, 'dkim-proxy-spool-'));
      let handle: FileHandle;
      const path = join(dir, 'message');
      try {
        handle = await open(path, 'wx', 0o600);
      } catch (err) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
      this.file = { path, dir, handle };
      for (const m of this.memory) await handle.write(m);
      this.memory = [];
      this.memoryBytes = 0;
    }
    await this.file.handle.write(chunk);
  }

  /** The body, from the start. */
  async reader(): Promise<Readable | Buffer[]> {
    if (!this.file) return this.memory;
    // No fsync: the reader sees what was written through the page cache, and
    // the spool never outlives the transaction (the client keeps the mail).
    return createReadStream(this.file.path, { highWaterMark: 64 * 1024 });
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.memory = [];
    if (this.file) {
      const { handle, dir } = this.file;
      await handle.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  }
}
