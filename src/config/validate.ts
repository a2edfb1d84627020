/**
 * Reading untrusted TOML values into typed ones: every problem is recorded
 * with its key path (and line), and reading goes on, so all errors come out
 * at once. Unknown keys are errors with a did-you-mean.
 */
import { keyPath, type Locator } from './locate.js';
import { parseDuration } from './units.js';

export interface ConfigIssue {
  readonly key: string;
  readonly line: number | undefined;
  readonly message: string;
}

export type Raw = Record<string, unknown>;

export const isTable = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * Names users bring from KumoMTA's dkim_data.toml, Momentum's dkim_sign,
 * DKIMproxy and Postfix, mapped to ours.
 */
const ALIASES: Record<string, string> = {
  algo: 'algorithm',
  digest: 'algorithm',
  filename: 'key_file',
  key: 'key_file',
  keyfile: 'key_file',
  header_canon: 'canonicalization',
  body_canon: 'canonicalization',
  method: 'canonicalization',
  headerlist: 'headers',
  lifetime: 'expire',
  expiration: 'expire',
  body_length_limit: 'body_length',
  base_domain: 'subdomains',
  max_size: 'max_message_bytes',
  message_size_limit: 'max_message_bytes',
  size_limit: 'max_message_bytes',
  authserv: 'authserv_id',
  hostname_for_ar: 'authserv_id',
  timeout: 'timeout_ms',
  nameservers: 'servers',
  allow: 'allow_clients',
  mynetworks: 'allow_clients',
};

export function didYouMean(word: string, choices: readonly string[]): string | undefined {
  const alias = ALIASES[word.toLowerCase()];
  if (alias !== undefined && choices.includes(alias)) return alias;
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of choices) {
    const score = distance(word.toLowerCase(), c.toLowerCase());
    if (score < bestScore) {
      best = c;
      bestScore = score;
    }
  }
  // Close enough to be a typo.
  return best !== undefined && bestScore <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

const describe = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : Array.isArray(v) ? 'an array' : isTable(v) ? 'a table' : String(v));

export class Validator {
  readonly issues: ConfigIssue[] = [];
  /** Things that load but deserve a word (a world-readable key, ed25519 alone...). */
  readonly warnings: ConfigIssue[] = [];
  private readonly locator: Locator;

  constructor(locator: Locator) {
    this.locator = locator;
  }

  error(path: readonly string[], message: string): void {
    this.issues.push({ key: keyPath(path), line: this.locator.line(path), message });
  }

  warn(path: readonly string[], message: string): void {
    this.warnings.push({ key: keyPath(path), line: this.locator.line(path), message });
  }

  /** Reports keys of `raw` outside `allowed`. */
  known(raw: Raw, path: readonly string[], allowed: readonly string[]): void {
    for (const k of Object.keys(raw)) {
      if (allowed.includes(k)) continue;
      const guess = didYouMean(k, allowed);
      this.error([...path, k], `unknown key "${k}"${guess ? `; did you mean "${guess}"?` : ''} (expected one of: ${allowed.join(', ')})`);
    }
  }

  table(raw: Raw, path: readonly string[], key: string): Raw | undefined {
    const v = raw[key];
    if (v === undefined) return undefined;
    if (isTable(v)) return v;
    this.error([...path, key], `expected a table, got ${describe(v)}`);
    return undefined;
  }

  string(raw: Raw, path: readonly string[], key: string): string | undefined {
    const v = raw[key];
    if (v === undefined) return undefined;
    if (typeof v === 'string') return v;
    this.error([...path, key], `expected a string, got ${describe(v)}`);
    return undefined;
  }

  bool(raw: Raw, path: readonly string[], key: string): boolean | undefined {
    const v = raw[key];
    if (v === undefined) return undefined;
    if (typeof v === 'boolean') return v;
    this.error([...path, key], `expected true or false, got ${describe(v)}`);
    return undefined;
  }

  integer(raw: Raw, path: readonly string[], key: string, min: number, max: number): number | undefined {
    const v = raw[key];
    if (v === undefined) return undefined;
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
    this.error([...path, key], `expected a whole number from ${min} to ${max}, got ${describe(v)}`);
    return undefined;
  }

  oneOf<T extends string>(raw: Raw, path: readonly string[], key: string, choices: readonly T[]): T | undefined {
    const v = raw[key];
    if (v === undefined) return undefined;
    if (typeof v === 'string' && (choices as readonly string[]).includes(v)) return v as T;
    const guess = typeof v === 'string' ? didYouMean(v, choices) : undefined;
    this.error([...path, key], `expected one of ${choices.map((c) => `"${c}"`).join(', ')}, got ${describe(v)}${guess ? `; did you mean "${guess}"?` : ''}`);
    return undefined;
  }

  strings(raw: Raw, path: readonly string[], key: string): string[] | undefined {
    const v = raw[key];
    if (v === undefined) return undefined;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    this.error([...path, key], `expected an array of strings, got ${describe(v)}`);
    return undefined;
  }

  /** A duration: `"7d"`, `"12h"`, or whole seconds; 0 only where `zero` says it means something. */
  duration(raw: Raw, path: readonly string[], key: string, options: { readonly zero?: boolean } = {}): number | undefined {
    const v = raw[key];
    if (v === undefined) return undefined;
    const none = options.zero === true && (v === 0 || (typeof v === 'string' && /^\s*0\s*[smhdw]?\s*$/i.test(v)));
    const seconds = none ? 0 : typeof v === 'number' ? (Number.isInteger(v) && v > 0 ? v : null) : typeof v === 'string' ? parseDuration(v) : null;
    if (seconds !== null) return seconds;
    this.error([...path, key], `expected a duration such as "7d", "12h", "30m" or whole seconds, got ${describe(v)}`);
    return undefined;
  }

  /** A size: `"50M"`, `"512K"`, or whole bytes. */
  size(raw: Raw, path: readonly string[], key: string): number | undefined {
    const v = raw[key];
    if (v === undefined) return undefined;
    if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return v;
    if (typeof v === 'string') {
      const m = /^\s*(\d+)\s*([KMG]?)i?B?\s*$/i.exec(v);
      if (m) return Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
    }
    this.error([...path, key], `expected a size such as "50M", "512K" or whole bytes, got ${describe(v)}`);
    return undefined;
  }
}
