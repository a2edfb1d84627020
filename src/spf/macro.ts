/**
 * SPF macros (RFC 7208 §7): %{s} %{l} %{o} %{d} %{i} %{p} %{v} %{h}, and in
 * explanations %{c} %{r} %{t}; the digit and `r` transformers, delimiters,
 * %% %_ %-, upper-case letters URL-encoded. Pure.
 */
import { parseIPv6 } from './record.js';

export interface MacroContext {
  /** <sender>: the identity checked (MAIL FROM, or postmaster@HELO). */
  readonly sender: string;
  /** <domain>: the domain being evaluated now. */
  readonly domain: string;
  /** The client's address: dotted quad, or IPv6 text. */
  readonly ip: string;
  readonly helo: string;
  /** The receiving host (%{r}); "unknown" when not configured. */
  readonly receiver: string;
  /** %{p}: looked up only when a record asks for it. */
  readonly validatedName: () => Promise<string>;
  /** Seconds since the epoch, for %{t}. */
  readonly now: number;
}

export type Expanded = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly reason: string };

const MACRO = /%\{([a-zA-Z])(\d*)(r?)([.\-+,/_=]*)\}|%%|%_|%-/g;

function ipNibbles(ip: string): string {
  const v6 = ip.includes(':') ? parseIPv6(ip) : null;
  if (v6 === null) return ip;
  return [...v6.toString('hex')].join('.');
}

async function letterValue(letter: string, c: MacroContext, explanation: boolean): Promise<string | null> {
  const at = c.sender.lastIndexOf('@');
  switch (letter) {
    case 's':
      return c.sender;
    case 'l':
      return at <= 0 ? 'postmaster' : c.sender.slice(0, at);
    case 'o':
      return c.sender.slice(at + 1);
    case 'd':
      return c.domain;
    case 'i':
      return ipNibbles(c.ip);
    case 'p':
      return c.validatedName();
    case 'v':
      return c.ip.includes(':') ? 'ip6' : 'in-addr';
    case 'h':
      return c.helo;
    case 'c':
      return explanation ? c.ip : null;
    case 'r':
      return explanation ? c.receiver : null;
    case 't':
      return explanation ? String(Math.floor(c.now)) : null;
    default:
      return null;
  }
}

/** RFC 7208 §7.3: split on the delimiters, reverse, keep the rightmost N parts, join with dots. */
function transform(value: string, digits: string, reverse: boolean, delimiters: string): string | null {
  const delims = delimiters === '' ? '.' : delimiters;
  let parts = value.split(new RegExp(`[${delims.replace(/[-\\\]^]/g, (c) => `\\${c}`)}]`));
  if (reverse) parts = parts.reverse();
  if (digits !== '') {
    const n = Number(digits);
    if (n === 0) return null;
    parts = parts.slice(Math.max(0, parts.length - n));
  }
  return parts.join('.');
}

export async function expandMacros(spec: string, c: MacroContext, explanation = false): Promise<Expanded> {
  let out = '';
  let last = 0;
  for (const m of spec.matchAll(MACRO)) {
    out += spec.slice(last, m.index);
    last = m.index + m[0].length;
    if (m[0] === '%%') out += '%';
    else if (m[0] === '%_') out += ' ';
    else if (m[0] === '%-') out += '%20';
    else {
      const letter = m[1]!;
      const value = await letterValue(letter.toLowerCase(), c, explanation);
      if (value === null) return { ok: false, reason: `%{${letter}} is not allowed here` };
      const t = transform(value, m[2]!, m[3] === 'r', m[4]!);
      if (t === null) return { ok: false, reason: `%{${m[0].slice(2, -1)}}: a transformer of 0 parts` };
      // Upper-case macro letters are URL-encoded (§7.3).
      out += letter === letter.toUpperCase() ? encodeURIComponent(t).replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`) : t;
    }
  }
  out += spec.slice(last);
  // A "%" not part of a macro is a syntax error (§7.1).
  const rest = spec.replace(MACRO, '');
  if (rest.includes('%')) return { ok: false, reason: `"${spec}" has a "%" that starts no macro` };
  return { ok: true, text: out };
}

/** §7.3: a domain-spec expansion over 253 octets loses labels on the left until it fits. */
export function truncateDomain(name: string): string {
  let n = name.replace(/\.$/, '');
  while (n.length > 253 && n.includes('.')) n = n.slice(n.indexOf('.') + 1);
  return n;
}
