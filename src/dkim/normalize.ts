/**
 * Line-end normalization: a bare LF becomes CRLF, once, before anything is
 * hashed, so the bytes we hash are the bytes we pass on (DKIM-PITFALLS 13).
 * A lone CR is left alone: it is an ordinary octet to both canonicalizations.
 */

import { relaxedScanner } from './wasm/relaxed.js';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

export class LineEndNormalizer {
  private lastWasCr = false;

  /** Returns the chunk with bare LFs fixed; the same Buffer when nothing changed. */
  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    // Mail is CRLF almost always: prove that with one SIMD pass and hand the chunk back untouched.
    if (relaxedScanner !== null && chunk.length >= 1024 && !(chunk[0] === LF && !this.lastWasCr) && relaxedScanner.findBareLf(chunk, 1, chunk.length) === -1) {
      this.lastWasCr = chunk[chunk.length - 1] === CR;
      return chunk;
    }
    let parts: Buffer[] | null = null;
    let from = 0;
    let lf = chunk.indexOf(LF);
    while (lf !== -1) {
      const prev = lf === 0 ? (this.lastWasCr ? CR : -1) : chunk[lf - 1];
      if (prev !== CR) {
        parts ??= [];
        if (lf > from) parts.push(chunk.subarray(from, lf));
        parts.push(CRLF);
        from = lf + 1;
      }
      lf = chunk.indexOf(LF, lf + 1);
    }
    this.lastWasCr = chunk[chunk.length - 1] === CR;
    if (parts === null) return chunk;
    if (from < chunk.length) parts.push(chunk.subarray(from));
    return Buffer.concat(parts);
  }
}

/** Whole-message form of LineEndNormalizer. */
export function normalizeLineEnds(message: Buffer): Buffer {
  return new LineEndNormalizer().push(message);
}
