/**
 * RFC 6376 §3.2 tag=value lists, shared by DKIM-Signature headers and key records.
 *
 * Input is a "binary" string (one char per octet, as produced by latin1 decoding),
 * so offsets map 1:1 onto the header bytes; that is what lets `stripTagValue`
 * remove exactly one signature's `b=` value and nothing else.
 */

export interface Tag {
  readonly name: string;
  /** The value with surrounding FWS trimmed; inner FWS kept as written. */
  readonly value: string;
  /** Offset of the first character after `=` (before any leading FWS). */
  readonly valueStart: number;
  /** Offset just past the value's trailing FWS (the `;` or end of input). */
  readonly valueEnd: number;
}

export type TagListResult =
  | { readonly ok: true; readonly tags: ReadonlyMap<string, Tag> }
  | { readonly ok: false; readonly tag: string | null; readonly message: string };

const isWsp = (c: number): boolean => c === 0x20 || c === 0x09;
const isAlpha = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
// A value's characters and FWS: RFC 6376 §3.2 VALCHAR (%x21-3A / %x3C-7E,
// printable ASCII except ";"), octets >= 0x80 (RFC 6532 allows UTF-8 in z=
// and n=), WSP, and CRLF followed by WSP (a folded line).
const VALUE_RUN = /(?:[\x21-\x3a\x3c-\x7e\x80-\uffff \t]+|\r\n[ \t])*/y;
// No value character is one of these, so trailing ones are FWS.
const isFwsChar = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;

/** Skips FWS: WSP runs and CRLF followed by WSP (a folded line). */
function skipFws(s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i);
    if (isWsp(c)) {
      i++;
    } else if (c === 0x0d && s.charCodeAt(i + 1) === 0x0a && isWsp(s.charCodeAt(i + 2))) {
      i += 3;
    } else {
      return i;
    }
  }
}

/**
 * Parses a tag-list. Tag names are case-sensitive (RFC 6376 §3.2); a duplicated
 * tag makes the whole list invalid. An empty list (or only `;`) is valid.
 */
export function parseTagList(s: string): TagListResult {
  const tags = new Map<string, Tag>();
  let i = 0;
  const n = s.length;
  while (i < n) {
    i = skipFws(s, i);
    if (i >= n) break;
    if (s.charCodeAt(i) === 0x3b) {
      // An empty tag-spec is only allowed as the optional trailing ";".
      if (tags.size === 0) return { ok: false, tag: null, message: 'empty tag before ";"' };
      i++;
      const rest = skipFws(s, i);
      if (rest >= n) break;
      return { ok: false, tag: null, message: `empty tag at offset ${i - 1}` };
    }
    const nameStart = i;
    if (!isAlpha(s.charCodeAt(i))) {
      return { ok: false, tag: null, message: `tag name expected at offset ${i}, got ${JSON.stringify(s[i])}` };
    }
    i++;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (isAlpha(c) || isDigit(c) || c === 0x5f) i++;
      else break;
    }
    const name = s.slice(nameStart, i);
    i = skipFws(s, i);
    if (s.charCodeAt(i) !== 0x3d) {
      return { ok: false, tag: name, message: `"=" expected after tag "${name}"` };
    }
    i++;
    const valueStart = i;
    // The value in one native scan: VALCHARs, octets >= 0x80 and FWS, up to
    // the next ";" or the end. A scan that stops anywhere else stopped at the
    // character that is neither.
    VALUE_RUN.lastIndex = i;
    VALUE_RUN.test(s);
    i = VALUE_RUN.lastIndex;
    if (i < n && s.charCodeAt(i) !== 0x3b) {
      return { ok: false, tag: name, message: `invalid character 0x${s.charCodeAt(i).toString(16).padStart(2, '0')} in value of "${name}"` };
    }
    const textStart = skipFws(s, valueStart);
    let textEnd = i;
    while (textEnd > textStart && isFwsChar(s.charCodeAt(textEnd - 1))) textEnd--;
    if (tags.has(name)) return { ok: false, tag: name, message: `tag "${name}" appears more than once` };
    tags.set(name, { name, value: s.slice(textStart, textEnd), valueStart, valueEnd: i });
    if (i < n) i++; // the ";"
    else break;
    // A trailing ";" followed by FWS only is allowed; loop handles it.
    if (skipFws(s, i) >= n) break;
  }
  return { ok: true, tags };
}

/** Removes all FWS from a value (for base64 `b=`/`bh=`, and `h=` lists). */
export function stripFws(value: string): string {
  return value.replace(/[ \t\r\n]+/g, '');
}

/** Returns `s` with the value of `tag` (and its surrounding FWS) removed, as RFC 6376 §3.7 asks for `b=`. */
export function stripTagValue(s: string, tag: Tag): string {
  return s.slice(0, tag.valueStart) + s.slice(tag.valueEnd);
}
