/**
 * The header block of a message: splitting it from the body, parsing fields
 * (with their exact bytes, folding included), and RFC 6376 §5.4.2 selection.
 *
 * Header text is handled as "binary" strings (latin1: one char per octet), so
 * 8-bit (RFC 6532) headers round-trip byte for byte.
 */

export interface HeaderField {
  /** Field name as written (case kept, no trailing WSP). */
  readonly name: string;
  /** Lower-cased name, for matching. */
  readonly key: string;
  /** The whole field as it appears in the message, continuation lines and final CRLF included. */
  readonly raw: string;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * Finds where the body starts. Returns the offset of the first body octet and
 * the length of the header block (which includes the last header's CRLF but not
 * the empty separator line). A message with no separator is all header.
 */
export function findBodyStart(message: Uint8Array): { headerEnd: number; bodyStart: number } {
  // A message that starts with CRLF has no header fields at all.
  if (message[0] === 0x0d && message[1] === 0x0a) return { headerEnd: 0, bodyStart: 2 };
  const buf = Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const at = buf.indexOf(CRLFCRLF);
  if (at === -1) return { headerEnd: message.length, bodyStart: message.length };
  return { headerEnd: at + 2, bodyStart: at + 4 };
}

/** Splits a header block (binary string, CRLF line ends) into fields. */
export function parseHeaderBlock(block: string): HeaderField[] {
  const fields: HeaderField[] = [];
  let start = 0;
  const n = block.length;
  while (start < n) {
    // A field runs until a CRLF that is not followed by WSP (a continuation).
    let end = start;
    for (;;) {
      const lf = block.indexOf('\n', end);
      if (lf === -1) {
        end = n;
        break;
      }
      end = lf + 1;
      const next = block.charCodeAt(end);
      if (next !== 0x20 && next !== 0x09) break;
    }
    const raw = block.slice(start, end);
    const colon = raw.indexOf(':');
    const name = (colon === -1 ? raw.replace(/\r?\n$/, '') : raw.slice(0, colon)).replace(/[ \t]+$/, '');
    fields.push({ name, key: asciiLower(name), raw });
    start = end;
  }
  return fields;
}

/** Lower-cases ASCII letters only, so that octets >= 0x80 in a binary string survive. */
export function asciiLower(s: string): string {
  // Called for every field name of every message: one scan, no regex, in the
  // usual case of an ASCII name (toLowerCase would also fold Latin-1 letters).
  let upper = false;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c >= 0x80) return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
    if (c >= 0x41 && c <= 0x5a) upper = true;
  }
  return upper ? s.toLowerCase() : s;
}

/**
 * Picks the header instances for an `h=` list, bottom-up for repeated names
 * (RFC 6376 §5.4.2). A name listed more often than it occurs selects nothing
 * for the extra entries, which contributes no input and asserts absence.
 */
export function selectHeaders(fields: readonly HeaderField[], names: readonly string[]): (HeaderField | null)[] {
  // Indexed by name, so the cost is linear in fields + names whatever a
  // hostile h= lists (a scan per name would be their product).
  const byKey = new Map<string, HeaderField[]>();
  for (const f of fields) {
    const list = byKey.get(f.key);
    if (list) list.push(f);
    else byKey.set(f.key, [f]);
  }
  const used = new Map<string, number>();
  return names.map((name) => {
    const key = asciiLower(name);
    const n = used.get(key) ?? 0;
    used.set(key, n + 1);
    const list = byKey.get(key);
    return list && n < list.length ? list[list.length - 1 - n]! : null;
  });
}

/** Counts fields per lower-cased name. */
export function countHeaders(fields: readonly HeaderField[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const f of fields) counts.set(f.key, (counts.get(f.key) ?? 0) + 1);
  return counts;
}
