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
// RFC 6376 §3.2 VALCHAR: %x21-3A / %x3C-7E (printable ASCII except ";").
const isValChar = (c: number): boolean => (c >= 0x21 && c <= 0x3a) || (c >= 0x3c && c <= 0x7e);

// A value's characters and FWS (WSP, or CRLF followed by WSP), as the loop in parseTagList accepts them.
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
    // The common case in one native scan: a value of VALCHARs, octets >= 0x80
    // and FWS up to the next ";" or the end. What stops it anywhere else is
    // an error, which the loop below finds and names.
    VALUE_RUN.lastIndex = i;
    VALUE_RUN.test(s);
    const runEnd = VALUE_RUN.lastIndex;
    if (runEnd >= n || s.charCodeAt(runEnd) === 0x3b) {
      const textStart = skipFws(s, i);
      let textEnd = runEnd;
      while (textEnd > textStart && isFwsChar(s.charCodeAt(textEnd - 1))) textEnd--;
      i = runEnd;
      if (tags.has(name)) return { ok: false, tag: name, message: `tag "${name}" appears more than once` };
      tags.set(name, { name, value: s.slice(textStart, textEnd), valueStart, valueEnd: i });
      if (i < n) i++;
      else break;
      if (skipFws(s, i) >= n) break;
      continue;
    }
    i = skipFws(s, i);
    const textStart = i;
    let textEnd = i;
    while (i < n && s.charCodeAt(i) !== 0x3b) {
      const c = s.charCodeAt(i);
      if (isValChar(c)) {
        i++;
        textEnd = i;
        continue;
      }
      const after = skipFws(s, i);
      if (after === i) {
        // RFC 6532 allows UTF-8 in some values (z=, n=); accept octets >= 0x80.
        if (c >= 0x80) {
          i++;
          textEnd = i;
          continue;
        }
        return { ok: false, tag: name, message: `invalid character 0x${c.toString(16).padStart(2, '0')} in value of "${name}"` };
      }
      i = after;
    }
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
