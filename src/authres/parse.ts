/**
 * Reading Authentication-Results (RFC 8601 §2.2) back: ARC's sealer combines
 * the fields of its own authserv-id into the ARC-Authentication-Results (RFC
 * 8617 §4.1.1) and takes the chain's state from their `arc=` result, and a
 * receiver reads the newest AAR to judge a trusted forwarder. Comments are
 * skipped wherever CFWS may stand; a field that does not parse is null, and
 * its results are never used.
 */

export interface Resinfo {
  /** Lower-cased method (`dkim`, `spf`, `arc`...). */
  readonly method: string;
  /** Lower-cased result word. */
  readonly result: string;
  readonly reason: string | undefined;
  /** `ptype.property` (lower-cased) to value, e.g. `header.d` → `example.com`. */
  readonly props: ReadonlyMap<string, string>;
  /** The resinfo as written, comments included, unfolded and trimmed. */
  readonly text: string;
}

export interface ParsedResults {
  /** Lower-cased. */
  readonly authservId: string;
  /** Empty for `none`. */
  readonly results: readonly Resinfo[];
}

class Cursor {
  pos = 0;
  readonly s: string;
  constructor(s: string) {
    this.s = s;
  }

  get done(): boolean {
    return this.pos >= this.s.length;
  }

  peek(): string {
    return this.s[this.pos] ?? '';
  }

  /** Skips whitespace and (nested, escaped) comments; false for a comment that never closes. */
  skipCfws(): boolean {
    while (!this.done) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
        this.pos++;
      } else if (c === '(') {
        let depth = 0;
        do {
          const d = this.peek();
          if (d === '\\') this.pos++;
          else if (d === '(') depth++;
          else if (d === ')') depth--;
          this.pos++;
        } while (depth > 0 && !this.done);
        if (depth > 0) return false;
      } else {
        return true;
      }
    }
    return true;
  }

  /** A token up to a delimiter in `stops` (or whitespace, `;`, `(`), or a quoted string; null when empty or unterminated. */
  value(stops = ''): string | null {
    if (this.peek() === '"') {
      let out = '';
      this.pos++;
      while (!this.done && this.peek() !== '"') {
        if (this.peek() === '\\') this.pos++;
        out += this.peek();
        this.pos++;
      }
      if (this.done) return null;
      this.pos++;
      return out;
    }
    const start = this.pos;
    while (!this.done) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n' || c === ';' || c === '(' || c === '"' || stops.includes(c)) break;
      this.pos++;
    }
    return this.pos > start ? this.s.slice(start, this.pos) : null;
  }
}

/** The value of an Authentication-Results field (after the colon); null when it does not parse. */
export function parseAuthenticationResults(value: string): ParsedResults | null {
  const c = new Cursor(value.replace(/\r?\n/g, ''));
  if (!c.skipCfws()) return null;
  const id = c.value();
  if (id === null) return null;
  if (!c.skipCfws()) return null;
  // authres-version: a number after the authserv-id.
  if (/[0-9]/.test(c.peek())) {
    c.value();
    if (!c.skipCfws()) return null;
  }
  const results = resinfos(c);
  return results === null ? null : { authservId: id.toLowerCase(), results };
}

/** The authserv-id alone, comments around it skipped, lower case; undefined when there is none. */
export function authservIdOf(value: string): string | undefined {
  const c = new Cursor(value);
  if (!c.skipCfws()) return undefined;
  return c.value()?.toLowerCase();
}

function resinfos(c: Cursor): Resinfo[] | null {
  const out: Resinfo[] = [];
  // "; none", or nothing at all (tolerated: a writer that had no result to give).
  if (c.done) return out;
  if (c.peek() !== ';') return null;
  while (!c.done) {
    if (c.peek() !== ';') return null;
    c.pos++;
    if (!c.skipCfws()) return null;
    if (c.done) break;
    const start = c.pos;
    const method = c.value('=/');
    if (method === null) return null;
    if (c.peek() === '/') {
      c.pos++;
      if (c.value('=') === null) return null;
    }
    if (!c.skipCfws()) return null;
    if (c.peek() !== '=') {
      if (method.toLowerCase() === 'none' && out.length === 0) {
        if (!c.skipCfws() || !c.done) return null;
        return out;
      }
      return null;
    }
    c.pos++;
    if (!c.skipCfws()) return null;
    const result = c.value('=');
    if (result === null) return null;
    let reason: string | undefined;
    const props = new Map<string, string>();
    for (;;) {
      if (!c.skipCfws()) return null;
      if (c.done || c.peek() === ';') break;
      const key = c.value('=');
      if (key === null) return null;
      if (!c.skipCfws() || c.peek() !== '=') return null;
      c.pos++;
      if (!c.skipCfws()) return null;
      const v = c.value();
      if (v === null) return null;
      const k = key.toLowerCase();
      if (k === 'reason') reason = v;
      else if (k.includes('.')) props.set(k, v);
      else return null;
    }
    out.push({ method: method.toLowerCase(), result: result.toLowerCase(), reason, props, text: c.s.slice(start, c.pos).trim() });
  }
  return out;
}

/** An ARC-Authentication-Results value: `i=N;` then an A-R payload; null when either part is missing or broken. */
export function parseArcAuthenticationResults(value: string): (ParsedResults & { readonly instance: number }) | null {
  const m = /^[ \t\r\n]*i[ \t\r\n]*=[ \t\r\n]*([0-9]{1,3})[ \t\r\n]*;/.exec(value);
  if (!m) return null;
  const parsed = parseAuthenticationResults(value.slice(m[0].length));
  return parsed === null ? null : { ...parsed, instance: Number(m[1]) };
}
