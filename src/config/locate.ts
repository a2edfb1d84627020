/**
 * Best-effort map from TOML key paths to line numbers, for error messages
 * (the TOML parser gives lines only for syntax errors). It understands table
 * headers with quoted keys and `key = value` lines; inline tables and
 * multi-line values just point at the line where they start.
 */

/** Splits a dotted TOML key (`domain."example.com".selector`) into parts. */
export function splitDottedKey(text: string): string[] | null {
  const parts: string[] = [];
  let i = 0;
  const s = text.trim();
  while (i < s.length) {
    while (s[i] === ' ' || s[i] === '\t') i++;
    const q = s[i];
    if (q === '"' || q === "'") {
      const end = s.indexOf(q, i + 1);
      if (end === -1) return null;
      parts.push(s.slice(i + 1, end));
      i = end + 1;
    } else {
      const m = /^[A-Za-z0-9_-]+/.exec(s.slice(i));
      if (!m) return null;
      parts.push(m[0]);
      i += m[0].length;
    }
    while (s[i] === ' ' || s[i] === '\t') i++;
    if (i < s.length) {
      if (s[i] !== '.') return null;
      i++;
    }
  }
  return parts;
}

/** Renders a key path the way it would be written in TOML. */
export function keyPath(path: readonly string[]): string {
  return path.map((p) => (/^[A-Za-z0-9_-]+$/.test(p) ? p : JSON.stringify(p))).join('.');
}

export class Locator {
  private readonly lines = new Map<string, number>();

  constructor(text: string) {
    let table: string[] = [];
    text.split(/\r?\n/).forEach((raw, index) => {
      const line = raw.replace(/^\s+/, '');
      const header = /^\[\[?([^\]]+)\]\]?/.exec(line);
      if (header) {
        table = splitDottedKey(header[1]!) ?? table;
        this.remember(table, index + 1);
        return;
      }
      const assign = /^((?:"[^"]*"|'[^']*'|[A-Za-z0-9_.\s-])+?)\s*=/.exec(line);
      if (assign) {
        const key = splitDottedKey(assign[1]!);
        if (key) this.remember([...table, ...key], index + 1);
      }
    });
  }

  private remember(path: readonly string[], line: number): void {
    const k = keyPath(path);
    if (!this.lines.has(k)) this.lines.set(k, line);
  }

  /** The line of a key, else of its nearest enclosing table, else undefined. */
  line(path: readonly string[]): number | undefined {
    for (let n = path.length; n > 0; n--) {
      const hit = this.lines.get(keyPath(path.slice(0, n)));
      if (hit !== undefined) return hit;
    }
    return undefined;
  }
}
