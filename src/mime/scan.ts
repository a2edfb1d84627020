/**
 * The receipt-time test of `transport_encoding = "7bit"`: does this message
 * need the MIME conversion at all? It watches the body as it streams, so that
 * a message already fit for any hop (the usual case) costs one scan and is
 * relayed byte for byte. It may say yes when the converter then changes
 * nothing (a label in a part's text that only looks like a MIME header); it
 * never says no to a message a 7-bit hop would change.
 */
import type { HeaderField } from '../dkim/index.js';
import { LineCheck, type Unsafe } from './lines.js';

const LF = 0x0a;
/** Long enough for `Content-Transfer-Encoding: binary` with some space around it. */
const LABEL_PREFIX = 64;

export type ConversionNeed = Unsafe | 'a part declared 8bit or binary';

/** A Content-Transfer-Encoding that a hop without 8BITMIME downgrades (Postfix does so on the label alone). */
export function isEightBitLabel(value: string): boolean {
  const v = value.replace(/\([^)]*\)/g, '').trim().toLowerCase();
  return v === '8bit' || v === 'binary';
}

const LABEL = /^content-transfer-encoding[ \t]*:(.*)$/i;

export class SevenBitScan {
  private readonly lines = new LineCheck();
  private label: ConversionNeed | undefined;
  /** The start of the current line, while it may still turn out to be a label. */
  private lineStart = '';
  private atLineStart = true;

  constructor(head: readonly HeaderField[]) {
    const cte = head.find((f) => f.key === 'content-transfer-encoding');
    if (cte && isEightBitLabel(cte.raw.slice(cte.raw.indexOf(':') + 1))) this.label = 'a part declared 8bit or binary';
  }

  update(chunk: Uint8Array): void {
    this.lines.update(chunk);
    if (this.label !== undefined || this.lines.unsafe !== undefined) return;
    let start = 0;
    while (start < chunk.length) {
      const lf = chunk.indexOf(LF, start);
      const end = lf === -1 ? chunk.length : lf;
      // Only a line that starts with C or c can be a label: most lines cost one comparison.
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
    const m = LABEL.exec(this.lineStart.replace(/\r$/, ''));
    this.lineStart = '';
    // A label folded onto the next line is taken for one: converting for nothing costs less than a broken signature.
    if (m && (m[1]!.trim() === '' || isEightBitLabel(m[1]!))) this.label = 'a part declared 8bit or binary';
  }

  /** The body is complete: why the message needs converting, or undefined when it goes as it came. */
  end(): ConversionNeed | undefined {
    if (this.lineStart.length > 0) this.checkLabel();
    return this.lines.end() ?? this.label;
  }
}
