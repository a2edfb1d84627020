import { readFile } from 'node:fs/promises';
import { CliError, EXIT } from './output.js';

/** Reads a message from FILE, or from stdin when no file (or "-") is given. */
export async function readMessage(file: string | undefined): Promise<Buffer> {
  if (file === undefined || file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
  try {
    return await readFile(file);
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, EXIT.noInput);
  }
}
