/**
 * SPF records (RFC 7208 §4.5, §4.6, §12): which TXT record is the SPF
 * record, and its terms. Pure: octets in, a typed record or a permerror
 * reason out.
 */
import { isIPv6 } from 'node:net';

export type Qualifier = '+' | '-' | '~' | '?';
export type MechanismName = 'all' | 'include' | 'a' | 'mx' | 'ptr' | 'ip4' | 'ip6' | 'exists';

export interface Mechanism {
  readonly qualifier: Qualifier;
  readonly name: MechanismName;
  /** The domain-spec as written (macros unexpanded); undefined when absent. */
  readonly domain: string | undefined;
  /** ip4/ip6: the address. */
  readonly address: string | undefined;
  readonly cidr4: number | undefined;
  readonly cidr6: number | undefined;
  /** The term as written, for results and logs. */
  readonly text: string;
}

export interface SpfRecord {
  readonly mechanisms: readonly Mechanism[];
  readonly redirect: string | undefined;
  readonly exp: string | undefined;
}

export type RecordSelection =
  | { readonly kind: 'none' }
  | { readonly kind: 'one'; readonly text: string }
  | { readonly kind: 'permerror'; readonly reason: string };

/** RFC 7208 §4.5: among a name's TXT records (strings joined), the one that starts with "v=spf1". */
export function selectRecord(records: readonly (readonly Buffer[])[]): RecordSelection {
  const spf: Buffer[] = [];
  for (const strings of records) {
    const joined = Buffer.concat(strings);
    const head = joined.subarray(0, 7).toString('latin1').toLowerCase();
    if (head === 'v=spf1' || head === 'v=spf1 ') spf.push(joined);
  }
  if (spf.length === 0) return { kind: 'none' };
  if (spf.length > 1) return { kind: 'permerror', reason: `${spf.length} SPF records (RFC 7208 allows one)` };
  const record = spf[0]!;
  // §4.6, §3: an SPF record is ASCII; anything else is a syntax error.
  if (record.some((b) => b > 0x7e || (b < 0x20 && b !== 0x09))) return { kind: 'permerror', reason: 'the record has a non-ASCII or control octet' };
  return { kind: 'one', text: record.toString('latin1') };
}

const MECHANISMS: readonly MechanismName[] = ['all', 'include', 'a', 'mx', 'ptr', 'ip4', 'ip6', 'exists'];
// RFC 7208 §7.1: a macro-string (domain-spec checks that it expands to a domain later).
const MACRO_STRING = /^(?:[\x21-\x24\x26-\x7e]|%\{[slodiphcrtvSLODIPHCRTV]\d*r?[.\-+,/_=]*\}|%%|%_|%-)*$/;
const NAME = /^[A-Za-z][A-Za-z0-9\-_.]*$/;

export type ParseResult = { readonly ok: true; readonly record: SpfRecord } | { readonly ok: false; readonly reason: string };

function cidr(text: string, max: number): number | null {
  if (!/^(0|[1-9]\d{0,2})$/.test(text)) return null;
  const n = Number(text);
  return n <= max ? n : null;
}

/** Splits `spec/cidr4//cidr6` off a domain-spec. */
function dualCidr(rest: string): { domain: string; cidr4: number | undefined; cidr6: number | undefined } | null {
  const m = /^(.*?)(?:\/(\d+))?(?:\/\/(\d+))?$/.exec(rest)!;
  const c4 = m[2] === undefined ? undefined : cidr(m[2], 32);
  const c6 = m[3] === undefined ? undefined : cidr(m[3], 128);
  if (c4 === null || c6 === null) return null;
  return { domain: m[1]!, cidr4: c4, cidr6: c6 };
}

export function parseRecord(text: string): ParseResult {
  const terms = text.split(/ +/).slice(1).filter((t) => t !== '');
  const mechanisms: Mechanism[] = [];
  let redirect: string | undefined;
  let exp: string | undefined;
  const bad = (reason: string): ParseResult => ({ ok: false, reason });
  for (const term of terms) {
    const eq = term.indexOf('=');
    const colon = term.indexOf(':');
    const slash = term.indexOf('/');
    // A modifier is name=value with the name before any ':' or '/'.
    if (eq > 0 && (colon === -1 || eq < colon) && (slash === -1 || eq < slash)) {
      const name = term.slice(0, eq).toLowerCase();
      const value = term.slice(eq + 1);
      if (!NAME.test(term.slice(0, eq))) return bad(`"${term}" is not a modifier (name=value)`);
      if (!MACRO_STRING.test(value)) return bad(`"${term}": the value is not a macro-string`);
      if (name === 'redirect' || name === 'exp') {
        if ((name === 'redirect' ? redirect : exp) !== undefined) return bad(`${name}= appears more than once`);
        if (value === '') return bad(`${name}= has no domain`);
        if (name === 'redirect') redirect = value;
        else exp = value;
      }
      // Unknown modifiers are ignored (§6).
      continue;
    }
    const qualifier = (/^[+\-~?]/.test(term) ? term[0] : '+') as Qualifier;
    const body = /^[+\-~?]/.test(term) ? term.slice(1) : term;
    const nameEnd = body.search(/[:/]/);
    const name = (nameEnd === -1 ? body : body.slice(0, nameEnd)).toLowerCase() as MechanismName;
    const rest = nameEnd === -1 ? '' : body.slice(nameEnd);
    if (!MECHANISMS.includes(name)) return bad(`unknown mechanism "${term}"`);
    const m = { qualifier, name, text: term };
    switch (name) {
      case 'all':
        if (rest !== '') return bad(`"${term}": all takes no argument`);
        mechanisms.push({ ...m, domain: undefined, address: undefined, cidr4: undefined, cidr6: undefined });
        break;
      case 'include':
      case 'exists':
        if (!rest.startsWith(':') || rest.length === 1) return bad(`"${term}": ${name} needs a domain`);
        if (!MACRO_STRING.test(rest.slice(1))) return bad(`"${term}": not a domain-spec`);
        mechanisms.push({ ...m, domain: rest.slice(1), address: undefined, cidr4: undefined, cidr6: undefined });
        break;
      case 'ptr':
        if (rest !== '' && (!rest.startsWith(':') || rest.length === 1 || !MACRO_STRING.test(rest.slice(1)))) return bad(`"${term}": not a domain-spec`);
        mechanisms.push({ ...m, domain: rest === '' ? undefined : rest.slice(1), address: undefined, cidr4: undefined, cidr6: undefined });
        break;
      case 'a':
      case 'mx': {
        if (rest !== '' && !rest.startsWith(':') && !rest.startsWith('/')) return bad(`"${term}": not a domain-spec`);
        const parsed = dualCidr(rest.startsWith(':') ? rest.slice(1) : rest);
        if (parsed === null) return bad(`"${term}": bad CIDR length`);
        if (rest.startsWith(':') && (parsed.domain === '' || !MACRO_STRING.test(parsed.domain))) return bad(`"${term}": not a domain-spec`);
        mechanisms.push({ ...m, domain: parsed.domain === '' ? undefined : parsed.domain, address: undefined, cidr4: parsed.cidr4, cidr6: parsed.cidr6 });
        break;
      }
      case 'ip4':
      case 'ip6': {
        if (!rest.startsWith(':')) return bad(`"${term}": ${name} needs an address`);
        const v = rest.slice(1);
        const at = name === 'ip4' ? v.indexOf('/') : v.lastIndexOf('/');
        const address = at === -1 ? v : v.slice(0, at);
        const length = at === -1 ? undefined : cidr(v.slice(at + 1), name === 'ip4' ? 32 : 128);
        if (length === null) return bad(`"${term}": bad CIDR length`);
        if (!(name === 'ip4' ? isIPv4Text(address) : isIPv6Text(address))) return bad(`"${term}": not an ${name === 'ip4' ? 'IPv4' : 'IPv6'} address`);
        mechanisms.push({ ...m, domain: undefined, address, cidr4: name === 'ip4' ? length : undefined, cidr6: name === 'ip6' ? length : undefined });
        break;
      }
    }
  }
  return { ok: true, record: { mechanisms, redirect, exp } };
}

/** Dotted-quad only (RFC 7208 §5.6: ip4-network is a dotted quad). */
export function isIPv4Text(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}

export function isIPv6Text(s: string): boolean {
  return isIPv6(s);
}

/** An IPv6 address as 16 octets (for CIDR matching and the %{i} nibbles), or null (embedded IPv4 allowed). */
export function parseIPv6(s: string): Buffer | null {
  if (!isIPv6(s)) return null;
  let text = s;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.')) {
    const v4 = text.slice(lastColon + 1);
    if (!isIPv4Text(v4)) return null;
    const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number];
    tail.push((a << 8) | b, (c << 8) | d);
    text = text.slice(0, lastColon + 1) + (text.endsWith('::' + v4) ? '' : '0');
    if (text.endsWith(':0') && tail.length) text = text.slice(0, -2);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (h: string): number[] | null => {
    if (h === '') return [];
    const out: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  if (left === null || right === null) return null;
  const words = left.length + right.length + tail.length;
  if (halves.length === 1 ? words !== 8 : words > 7) return null;
  const all = [...left, ...Array<number>(8 - words).fill(0), ...right, ...tail];
  const out = Buffer.alloc(16);
  all.forEach((w, k) => out.writeUInt16BE(w, k * 2));
  return out;
}
