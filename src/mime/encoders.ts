/**
 * The body encoders of the 7-bit conversion, fed chunk by chunk and giving
 * their output as they go, so a 40 MB attachment is never held whole. The
 * encodings themselves are nodemailer's (libqp, libbase64); what is ours is
 * the chunking, and the one thing libqp leaves alone that a 7-bit hop would
 * not: a CR that does not end a line.
 */
import * as libbase64 from 'libbase64';
import * as libqp from 'libqp';

const LF = 0x0a;
const CR = 0x0d;
const CRLF = Buffer.from('\r\n');
/** A line this long without an LF is encoded in pieces joined by soft line breaks. */
const MAX_PENDING = 64 * 1024;
/** 57 octets make one 76-character base64 line. */
const BASE64_LINE_OCTETS = 57;

/**
 * Input is encoded this much at a time: the strings libqp and libbase64 make
 * then stay in V8's young generation, which a scavenge frees at once, rather
 * than its large-object space, which waits for a full collection.
 */
const SLICE = 48 * 1024;

/** `encode` over `octets` a slice at a time, the pieces joined. */
function sliced(octets: Buffer, step: number, encode: (slice: Buffer) => string): Buffer {
  if (octets.length <= step) return Buffer.from(encode(octets), 'latin1');
  const out: Buffer[] = [];
  for (let at = 0; at < octets.length; at += step) out.push(Buffer.from(encode(octets.subarray(at, Math.min(octets.length, at + step))), 'latin1'));
  return Buffer.concat(out);
}

export interface BodyEncoder {
  push(chunk: Buffer): Buffer | undefined;
  end(): Buffer | undefined;
}

function latin1(s: string): Buffer | undefined {
  return s.length === 0 ? undefined : Buffer.from(s, 'latin1');
}

/** Quoted-printable: CRLF stays a line break, everything else a 7-bit hop would touch becomes =XX. */
export class QuotedPrintableEncoder implements BodyEncoder {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer | undefined {
    const all = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    // Cut after a CRLF: a lone LF is content (=0A), and the output line it is on goes on.
    let cut = all.lastIndexOf(CRLF) + 2;
    if (cut === 1) cut = 0;
    let soft = false;
    if (cut === 0) {
      if (all.length < MAX_PENDING) {
        this.pending = all;
        return undefined;
      }
      // A very long line: encode what there is, keeping a CR that may yet be a line end's.
      cut = all[all.length - 1] === CR ? all.length - 1 : all.length;
      soft = true;
    }
    this.pending = all.subarray(cut);
    if (this.pending.length > 0) this.pending = Buffer.from(this.pending);
    const encoded = encodeLines(all.subarray(0, cut));
    return latin1(soft && !encoded.endsWith('\r\n') ? `${encoded}=\r\n` : encoded);
  }

  end(): Buffer | undefined {
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    return rest.length === 0 ? undefined : latin1(encodeLines(rest));
  }
}

/** Quoted-printable of `octets`, a slice at a time, each slice cut after a CRLF where it has one (else joined by a soft line break). */
function encodeLines(octets: Buffer): string {
  if (octets.length <= SLICE) return encodeSlice(octets);
  let out = '';
  let at = 0;
  while (at < octets.length) {
    let end = Math.min(octets.length, at + SLICE);
    if (end < octets.length) {
      const crlf = octets.lastIndexOf(CRLF, end - 2);
      if (crlf >= at) end = crlf + 2;
      else if (octets[end - 1] === CR) end--;
    }
    const piece = encodeSlice(octets.subarray(at, end));
    out += end < octets.length && !piece.endsWith('\r\n') ? `${piece}=\r\n` : piece;
    at = end;
  }
  return out;
}

function encodeSlice(octets: Buffer): string {
  // libqp passes a lone CR or LF through as it is; on the wire that is a line end gone wrong.
  return libqp.wrap(libqp.encode(octets).replace(/\r(?!\n)|(?<!\r)\n/g, (c) => (c === '\r' ? '=0D' : '=0A')), 76);
}

/** Base64 in 76-character lines. */
export class Base64Encoder implements BodyEncoder {
  private pending: Buffer = Buffer.alloc(0);
  private lines = 0;

  push(chunk: Buffer): Buffer | undefined {
    const out: Buffer[] = [];
    let rest = chunk;
    if (this.pending.length > 0) {
      // Only the one line the last chunk began is copied; the rest is encoded where it lies.
      const need = BASE64_LINE_OCTETS - this.pending.length;
      const first = Buffer.concat([this.pending, rest.subarray(0, need)]);
      rest = rest.subarray(need);
      if (first.length < BASE64_LINE_OCTETS) {
        this.pending = first;
        return undefined;
      }
      out.push(this.lines_(first));
    }
    const whole = rest.length - (rest.length % BASE64_LINE_OCTETS);
    this.pending = Buffer.from(rest.subarray(whole));
    if (whole > 0) out.push(this.lines_(rest.subarray(0, whole)));
    return out.length === 0 ? undefined : out.length === 1 ? out[0] : Buffer.concat(out);
  }

  end(): Buffer | undefined {
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    return rest.length === 0 ? undefined : this.lines_(rest);
  }

  private lines_(octets: Buffer): Buffer {
    const step = SLICE - (SLICE % BASE64_LINE_OCTETS);
    // Each piece starts a line of its own: the one before it ended without its CRLF.
    return sliced(octets, step, (slice) => `${this.lines++ === 0 ? '' : '\r\n'}${libbase64.wrap(libbase64.encode(slice), 76)}`);
  }
}

/**
 * A base64 body whose lines are too long (or carry stray octets): its
 * characters, re-wrapped. What a decoder ignores (line breaks, anything
 * outside the alphabet) is dropped, so the decoded octets stay the same.
 */
export class Base64Rewrapper implements BodyEncoder {
  private pending = '';
  private lines = 0;

  push(chunk: Buffer): Buffer | undefined {
    const all = this.pending + chunk.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, '');
    const whole = all.length - (all.length % 76);
    this.pending = all.slice(whole);
    return whole === 0 ? undefined : this.emit(all.slice(0, whole));
  }

  end(): Buffer | undefined {
    const rest = this.pending;
    this.pending = '';
    return rest.length === 0 ? undefined : this.emit(rest);
  }

  private emit(chars: string): Buffer | undefined {
    const lines = chars.match(/.{1,76}/g) ?? [];
    const out = (this.lines === 0 ? '' : '\r\n') + lines.join('\r\n');
    this.lines += lines.length;
    return latin1(out);
  }
}

/**
 * A quoted-printable body a 7-bit hop would still change (8-bit octets in
 * it, lines over 998 octets): decoded up to its last line end and encoded
 * again. A cut after an LF splits neither an `=XX` nor a soft line break.
 */
export class QuotedPrintableReencoder implements BodyEncoder {
  private pending: Buffer = Buffer.alloc(0);
  private readonly encoder = new QuotedPrintableEncoder();

  push(chunk: Buffer): Buffer | undefined {
    const all = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let cut = all.lastIndexOf(LF) + 1;
    if (cut === 0 && all.length < MAX_PENDING) {
      this.pending = all;
      return undefined;
    }
    if (cut === 0) {
      // A very long encoded line: cut it, but not inside an `=XX`.
      cut = all.length;
      const eq = all.lastIndexOf(0x3d);
      if (eq !== -1 && eq >= all.length - 2) cut = eq;
    }
    this.pending = Buffer.from(all.subarray(cut));
    return this.encoder.push(libqp.decode(all.subarray(0, cut).toString('latin1')));
  }

  end(): Buffer | undefined {
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    const last = rest.length > 0 ? this.encoder.push(libqp.decode(rest.toString('latin1'))) : undefined;
    const tail = this.encoder.end();
    return last && tail ? Buffer.concat([last, tail]) : (last ?? tail);
  }
}
