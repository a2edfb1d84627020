/**
 * Loader for the SIMD relaxed-body scanner (relaxed.wat). Returns null where
 * WebAssembly SIMD is unavailable; callers then use the JS path, which gives
 * the same bytes (the property tests compare both against an oracle).
 */
import { WASM_BASE64 } from './relaxed-wasm.js';

/** Input handed to the scanner per call; larger regions go in slices. */
export const SLICE = 256 * 1024;
const PAD = 64;
// One octet before the input stays readable for bare_lf's look-behind.
const IN = PAD;
const OUT = IN + SLICE + PAD;

export interface RelaxedScanner {
  /**
   * Canonicalizes `src[start, end)`, which must start with nothing pending and
   * end with a content octet (not SP, TAB, CR or LF), `end - start <= SLICE`.
   * The result is a view into scanner memory, valid until the next call.
   */
  relax(src: Uint8Array, start: number, end: number): Uint8Array;
  /**
   * The index of the first LF in `src[start, end)` not preceded by CR, or -1.
   * `start` must be at least 1 (the octet before it is the look-behind).
   */
  findBareLf(src: Uint8Array, start: number, end: number): number;
  /**
   * transport_encoding's receipt scan (src/mime/scan.ts): the index of the
   * first octet in `src[start, end)` that a 7-bit hop would trip on, or that
   * may start a Content-Transfer-Encoding label (C or c at a line's start);
   * -1 when none. `before` is the octet before `start` (LF at a body's start),
   * `line` the current line's octets before it. After the call, `line` holds
   * the line's octets before the index returned (before `end`, for -1). A CR
   * at `end - 1` is taken to end its line: the caller checks the next octet.
   */
  sevenBit(src: Uint8Array, start: number, end: number, before: number, line: number): number;
  /** Set by sevenBit. */
  line: number;
}

function load(): RelaxedScanner | null {
  if (process.env['DKIM_PROXY_NO_WASM'] === '1') return null;
  try {
    const module = new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64'));
    const instance = new WebAssembly.Instance(module);
    const memory = instance.exports['memory'] as WebAssembly.Memory;
    const relax = instance.exports['relax'] as (src: number, end: number, dst: number) => number;
    const bareLf = instance.exports['bare_lf'] as (src: number, end: number) => number;
    const sevenBit = instance.exports['seven_bit'] as (src: number, end: number, line: number) => number;
    const lineGlobal = instance.exports['line'] as { value: number };
    const needed = Math.ceil((OUT + SLICE + PAD) / 65536);
    memory.grow(needed - memory.buffer.byteLength / 65536);
    const bytes = new Uint8Array(memory.buffer);
    return {
      relax(src, start, end) {
        const n = end - start;
        if (n > SLICE) throw new RangeError(`region of ${n} octets exceeds the scanner slice of ${SLICE}`);
        bytes.set(src.subarray(start, end), IN);
        const outEnd = relax(IN, IN + n, OUT);
        return bytes.subarray(OUT, outEnd);
      },
      findBareLf(src, start, end) {
        for (let s = start; s < end; s += SLICE) {
          const e = Math.min(end, s + SLICE);
          bytes.set(src.subarray(s - 1, e), IN - 1);
          const at = bareLf(IN, IN + (e - s));
          if (at !== -1) return s + (at - IN);
        }
        return -1;
      },
      sevenBit(src, start, end, before, line) {
        let carry = line;
        for (let s = start; s < end; s += SLICE) {
          const e = Math.min(end, s + SLICE);
          bytes[IN - 1] = s === start ? before : src[s - 1]!;
          bytes.set(src.subarray(s, e), IN);
          // The octet after the slice: the next slice's first, or an LF that lets a final CR be.
          bytes[IN + (e - s)] = e < end ? src[e]! : 0x0a;
          const at = sevenBit(IN, IN + (e - s), carry);
          carry = lineGlobal.value;
          if (at !== IN + (e - s)) {
            this.line = carry;
            return s + (at - IN);
          }
        }
        this.line = carry;
        return -1;
      },
      line: 0,
    };
  } catch {
    return null;
  }
}

export const relaxedScanner: RelaxedScanner | null = load();
