/**
 * The receipt-time test of `transport_encoding = "7bit"`: does this message
 * need the MIME conversion at all? It watches the body as it streams, so that
 * a message already fit for any hop (the usual case) costs one scan and is
 * relayed byte for byte. It may say yes when the converter then changes
 * nothing (a label in a part's text that only looks like a MIME header); it
 * never says no to a message a 7-bit hop would change.
 *
 * The scan is SIMD (src/dkim/wasm/relaxed.wat) where WebAssembly has it, 16
 * octets at a time; the JS path gives the same answer (a property test holds
 * them to it) and is what runs without it.
 */
import type { HeaderField } from '../dkim/index.js';
import { relaxedScanner } from '../dkim/wasm/relaxed.js';
import { LineCheck, MAX_LINE_OCTETS, type Unsafe } from './lines.js';

const LF = 0x0a;
const CR = 0x0d;
/** Long enough for `Content-Transfer-Encoding: binary` with some space around it. */
const LABEL_PREFIX = 64;

export type ConversionNeed = Unsafe | 'a part declared 8bit or binary';
const LABELLED: ConversionNeed = 'a part declared 8bit or binary';

/** A Content-Transfer-Encoding that a hop without 8BITMIME downgrades (Postfix does so on the label alone). */
export function isEightBitLabel(value: string): boolean {
  const v = value.replace(/\([^)]*\)/g, '').trim().toLowerCase();
  return v === '8bit' || v === 'binary';
}

const LABEL = /^content-transfer-encoding[ \t]*:(.*)$/i;

/** Whether the start of a body line is a label a 7-bit hop would act on. */
function isEightBitLabelLine(start: string): boolean {
  const m = LABEL.exec(start.replace(/\r$/, ''));
  // A label folded onto the next line is taken for one: converting for nothing costs less than a broken signature.
  return m !== null && (m[1]!.trim() === '' || isEightBitLabel(m[1]!));
}

export interface SevenBitScanner {
  update(chunk: Uint8Array): void;
  /** The body is complete: why the message needs converting, or undefined when it goes as it came. */
  end(): ConversionNeed | undefined;
}

/** The scan, SIMD where there is WebAssembly SIMD. `head` is the message's own header block. */
export class SevenBitScan implements SevenBitScanner {
  private readonly impl: SevenBitScanner;

  constructor(head: readonly HeaderField[], simd = relaxedScanner !== null) {
    const cte = head.find((f) => f.key === 'content-transfer-encoding');
    const labelled = cte !== undefined && isEightBitLabel(cte.raw.slice(cte.raw.indexOf(':') + 1));
    this.impl = simd && relaxedScanner !== null ? new SimdScan(labelled) : new JsScan(labelled);
  }

  update(chunk: Uint8Array): void {
    this.impl.update(chunk);
  }

  end(): ConversionNeed | undefined {
    return this.impl.end();
  }
}

/** Line by line in JS: LineCheck for the octets, and each line that starts with C or c tried as a label. */
class JsScan implements SevenBitScanner {
  private readonly lines = new LineCheck();
  private label: ConversionNeed | undefined;
  /** The start of the current line, while it may still turn out to be a label. */
  private lineStart = '';
  private atLineStart = true;

  constructor(labelled: boolean) {
    if (labelled) this.label = LABELLED;
  }

  update(chunk: Uint8Array): void {
    this.lines.update(chunk);
    if (this.label !== undefined || this.lines.unsafe !== undefined) return;
    let start = 0;
    while (start < chunk.length) {
      const lf = chunk.indexOf(LF, start);
      const end = lf === -1 ? chunk.length : lf;
      if (this.atLineStart || this.lineStart.length > 0) {
        const first = this.atLineStart ? chunk[start] : 0x43;
        if (first === 0x43 || first === 0x63) {
          this.lineStart += Buffer.from(chunk.buffer, chunk.byteOffset + start, Math.min(end - start, LABEL_PREFIX)).toString('latin1');
          if (this.lineStart.length > LABEL_PREFIX) this.lineStart = this.lineStart.slice(0, LABEL_PREFIX);
        }
      }
      if (lf === -1) {
        this.atLineStart = false;
        return;
      }
      this.checkLabel();
      this.atLineStart = true;
      start = lf + 1;
    }
  }

  private checkLabel(): void {
    if (this.lineStart.length > 0 && isEightBitLabelLine(this.lineStart)) this.label = LABELLED;
    this.lineStart = '';
  }

  end(): ConversionNeed | undefined {
    if (this.lineStart.length > 0) this.checkLabel();
    return this.lines.end() ?? this.label;
  }
}

/** The SIMD scan: it stops only at what may matter, and the rare stop is looked at here. */
class SimdScan implements SevenBitScanner {
  private need: ConversionNeed | undefined;
  private label: ConversionNeed | undefined;
  /** The octet before the next chunk: LF at the body's start. */
  private before = LF;
  /** The current line's octets so far (a CR before its LF included). */
  private line = 0;
  /** A label line cut by the chunk's end: its start, to be completed by the next chunk. */
  private partial: string | undefined;

  constructor(labelled: boolean) {
    if (labelled) this.label = LABELLED;
  }

  update(chunk: Uint8Array): void {
    if (this.need !== undefined || chunk.length === 0) return;
    const scanner = relaxedScanner!;
    if (this.before === CR && chunk[0] !== LF) {
      this.need = 'bare CR or LF';
      return;
    }
    if (this.partial !== undefined) {
      const lf = chunk.indexOf(LF);
      this.partial += Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(lf === -1 ? chunk.length : lf, LABEL_PREFIX)).toString('latin1');
      if (lf !== -1 || this.partial.length >= LABEL_PREFIX) {
        if (isEightBitLabelLine(this.partial.slice(0, LABEL_PREFIX))) this.label = LABELLED;
        this.partial = undefined;
      }
    }
    let from = 0;
    let line = this.line;
    for (;;) {
      const at = scanner.sevenBit(chunk, from, chunk.length, from === 0 ? this.before : chunk[from - 1]!, line);
      line = scanner.line;
      if (at === -1) break;
      const c = chunk[at]!;
      if (c >= 0x80) this.need = '8-bit octets';
      else if (c === 0) this.need = 'NUL octets';
      else if (c === CR) this.need = 'bare CR or LF';
      else if (c === LF) this.need = (at === 0 ? this.before : chunk[at - 1]) === CR ? 'lines over 998 octets' : 'bare CR or LF';
      if (this.need !== undefined) return;
      // A C or c at a line's start: the line may be a label.
      if (this.label === undefined) {
        const lf = chunk.indexOf(LF, at);
        const text = Buffer.from(chunk.buffer, chunk.byteOffset + at, Math.min((lf === -1 ? chunk.length : lf) - at, LABEL_PREFIX)).toString('latin1');
        if (lf === -1 && text.length < LABEL_PREFIX) this.partial = text;
        else if (isEightBitLabelLine(text)) this.label = LABELLED;
      }
      from = at + 1;
      line += 1;
    }
    this.line = line;
    this.before = chunk[chunk.length - 1]!;
  }

  end(): ConversionNeed | undefined {
    if (this.need !== undefined) return this.need;
    if (this.before === CR) return 'bare CR or LF';
    if (this.line > MAX_LINE_OCTETS) return 'lines over 998 octets';
    if (this.partial !== undefined && isEightBitLabelLine(this.partial)) return LABELLED;
    return this.label;
  }
}
