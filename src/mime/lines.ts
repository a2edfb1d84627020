/**
 * What a hop without 8BITMIME, or one that enforces RFC 5322's 998-octet
 * line limit, would change in a run of body octets: 8-bit octets, NUL, a CR
 * or an LF that is not half of a CRLF, a line over 998 octets. Fed chunk by
 * chunk (a line may span chunks). Receipt makes every bare LF a CRLF, but a
 * decoded part may hold them.
 */
import { isAscii } from 'node:buffer';

const CR = 0x0d;
const LF = 0x0a;
export const MAX_LINE_OCTETS = 998;

export type Unsafe = '8-bit octets' | 'NUL octets' | 'bare CR or LF' | 'lines over 998 octets';

export class LineCheck {
  /** The first thing found that a 7-bit hop would change; undefined while the octets are safe. */
  unsafe: Unsafe | undefined;
  /** Octets of the current line seen so far, without its CRLF. */
  private lineOctets = 0;
  private lastWasCr = false;

  update(chunk: Uint8Array): void {
    if (this.unsafe !== undefined || chunk.length === 0) return;
    if (!isAscii(chunk)) {
      this.unsafe = '8-bit octets';
      return;
    }
    if (chunk.indexOf(0) !== -1) {
      this.unsafe = 'NUL octets';
      return;
    }
    // A CR left at the end of the last chunk must start this one's LF.
    if (this.lastWasCr && chunk[0] !== LF) {
      this.unsafe = 'bare CR or LF';
      return;
    }
    let start = this.lastWasCr ? 1 : 0;
    let lf = chunk.indexOf(LF, start);
    while (lf !== -1) {
      const cr = chunk.indexOf(CR, start);
      const ended = lf === 0 ? this.lastWasCr : chunk[lf - 1] === CR;
      if ((cr !== -1 && cr < lf - 1) || !ended) {
        this.unsafe = 'bare CR or LF';
        return;
      }
      if (this.lineOctets + (lf - start) - 1 > MAX_LINE_OCTETS) {
        this.unsafe = 'lines over 998 octets';
        return;
      }
      this.lineOctets = 0;
      start = lf + 1;
      lf = chunk.indexOf(LF, start);
    }
    // The rest is a line not yet ended: a CR in it ends it only if an LF follows next.
    const rest = chunk.length - start;
    const cr = chunk.indexOf(CR, start);
    this.lastWasCr = chunk[chunk.length - 1] === CR;
    if (cr !== -1 && cr < chunk.length - 1) {
      this.unsafe = 'bare CR or LF';
      return;
    }
    this.lineOctets += this.lastWasCr ? rest - 1 : rest;
    if (this.lineOctets > MAX_LINE_OCTETS) this.unsafe = 'lines over 998 octets';
  }

  /** The body ended: a CR at its very end ends no line. */
  end(): Unsafe | undefined {
    if (this.unsafe === undefined && this.lastWasCr) this.unsafe = 'bare CR or LF';
    return this.unsafe;
  }
}
