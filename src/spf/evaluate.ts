/**
 * check_host() (RFC 7208 §4): the SPF result for a client address, a
 * sender and a HELO name. Pure but for DNS, which comes in as an interface
 * (the wire-format client in production, a zone in tests), so that the
 * limits of §4.6.4 (10 DNS mechanisms, 2 void lookups, 10 MX and PTR names)
 * hold whatever the records say.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { WireResolver } from '../dns/wire.js';
import { boundedMemo } from '../util/memo.js';
import { expandMacros, truncateDomain, type MacroContext } from './macro.js';
import { parseIPv6, parseRecord, selectRecord, type Mechanism, type Qualifier } from './record.js';

export type SpfResult = 'none' | 'neutral' | 'pass' | 'fail' | 'softfail' | 'temperror' | 'permerror';

/** What SPF asks of DNS: the wire-format client's lookups (a zone map in unit tests). */
export type SpfDns = WireResolver;

export interface SpfQuery {
  /** The client's address; an IPv4-mapped IPv6 address counts as IPv4. */
  readonly ip: string;
  /** MAIL FROM; empty for a null sender (the HELO identity is checked then). */
  readonly mailFrom: string;
  readonly helo: string;
  /** %{r}: the receiving host, for explanations. */
  readonly receiver?: string;
  /** Seconds since the epoch (%{t}). */
  readonly now: number;
}

export interface SpfOutcome {
  readonly result: SpfResult;
  /** Which identity was checked (RFC 7208 §2.3, §2.4). */
  readonly identity: 'mailfrom' | 'helo';
  /** The address checked: MAIL FROM, or postmaster@HELO. */
  readonly sender: string;
  /** The domain whose policy was evaluated first. */
  readonly domain: string;
  /** The term that decided, as written (`-all`, `include:_spf.example.net`), if one did. */
  readonly mechanism: string | undefined;
  /** The expanded exp= text, for a fail that has one. */
  readonly explanation: string | undefined;
  /** Why, in words: for A-R comments, logs and the command. */
  readonly reason: string;
}

export const MAX_DNS_MECHANISMS = 10;
export const MAX_VOID_LOOKUPS = 2;
const MAX_NAMES = 10;
const MAX_DEPTH = 20;

/**
 * Parsed records by their text: the same few records (a big sender's,
 * its includes) come with most messages, and the DNS cache hands back the
 * same text. Bounded; parse results are never changed after parsing.
 */
const parseRecordOnce = boundedMemo(parseRecord, 2000);

const QUALIFIED: Record<Qualifier, SpfResult> = { '+': 'pass', '-': 'fail', '~': 'softfail', '?': 'neutral' };

/** An error that ends the evaluation with its result (§4.6.4, §2.6). */
class Stop extends Error {
  readonly result: 'temperror' | 'permerror';
  constructor(result: 'temperror' | 'permerror', reason: string) {
    super(reason);
    this.result = result;
  }
}

type Family = 4 | 6;

function clientAddress(ip: string): { text: string; family: Family; bytes: Buffer } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const text = mapped ? mapped[1]! : ip;
  if (isIPv4(text)) return { text, family: 4, bytes: Buffer.from(text.split('.').map(Number)) };
  const v6 = isIPv6(text) ? parseIPv6(text) : null;
  if (v6 === null) throw new Error(`not an IP address: ${ip}`);
  return { text, family: 6, bytes: v6 };
}

function inNetwork(client: Buffer, network: Buffer, bits: number): boolean {
  if (client.length !== network.length) return false;
  for (let k = 0; k < bits; k += 8) {
    const left = Math.min(8, bits - k);
    const mask = (0xff << (8 - left)) & 0xff;
    if ((client[k >> 3]! & mask) !== (network[k >> 3]! & mask)) return false;
  }
  return true;
}

function addressBytes(text: string): Buffer | null {
  if (isIPv4(text)) return Buffer.from(text.split('.').map(Number));
  return parseIPv6(text);
}

/** §4.3: a multi-label domain name with labels of 1 to 63 octets. */
function wellFormedDomain(d: string): boolean {
  const n = d.replace(/\.$/, '');
  if (n.length === 0 || n.length > 253 || !n.includes('.')) return false;
  return n.split('.').every((l) => l.length > 0 && l.length <= 63);
}

function reverseName(client: { family: Family; bytes: Buffer }): string {
  if (client.family === 4) return `${[...client.bytes].reverse().join('.')}.in-addr.arpa`;
  return `${[...client.bytes.toString('hex')].reverse().join('.')}.ip6.arpa`;
}

export async function checkSpf(query: SpfQuery, dns: SpfDns): Promise<SpfOutcome> {
  const client = clientAddress(query.ip);
  const helo = query.helo.replace(/\.$/, '');
  const identity: 'mailfrom' | 'helo' = query.mailFrom === '' ? 'helo' : 'mailfrom';
  let sender = identity === 'helo' ? `postmaster@${helo}` : query.mailFrom;
  // §4.3: a MAIL FROM without a local part is postmaster at its domain.
  if (sender.startsWith('@')) sender = `postmaster${sender}`;
  const domain = sender.slice(sender.lastIndexOf('@') + 1).replace(/\.$/, '').toLowerCase();
  const base = { identity, sender, domain } as const;
  if (!wellFormedDomain(domain)) return { ...base, result: 'none', mechanism: undefined, explanation: undefined, reason: `"${domain}" is not a fully qualified domain name` };

  let lookups = 0;
  let voids = 0;
  const countLookup = (term: string): void => {
    if (++lookups > MAX_DNS_MECHANISMS) throw new Stop('permerror', `more than ${MAX_DNS_MECHANISMS} DNS lookups (at ${term})`);
  };
  const countVoid = (name: string): void => {
    if (++voids > MAX_VOID_LOOKUPS) throw new Stop('permerror', `more than ${MAX_VOID_LOOKUPS} lookups found nothing (at ${name})`);
  };

  // The client's validated names, looked up once for ptr and %{p} alike (§5.5: a DNS error means none).
  let names: Promise<string[]> | undefined;
  const validated = (): Promise<string[]> => (names ??= validatedNames().catch(() => []));
  const context = (current: string): MacroContext => ({
    sender,
    domain: current,
    ip: client.text,
    helo,
    receiver: query.receiver ?? 'unknown',
    now: query.now,
    validatedName: () => validatedName(current),
  });
  const expandDomain = async (spec: string | undefined, current: string, term: string): Promise<string> => {
    if (spec === undefined) return current;
    const e = await expandMacros(spec, context(current));
    if (!e.ok) throw new Stop('permerror', `${term}: ${e.reason}`);
    return truncateDomain(e.text).toLowerCase();
  };

  /** Addresses of a name in the client's family; `void` when the lookup found nothing (it counts toward the limit of 2). */
  const addresses = async (name: string): Promise<{ records: readonly string[]; void: boolean }> => {
    const answer = client.family === 4 ? await dns.a(name) : await dns.aaaa(name);
    switch (answer.kind) {
      case 'found':
        return { records: answer.records, void: false };
      case 'temperror':
        throw new Stop('temperror', `DNS error looking up ${name}: ${answer.detail}`);
      case 'nxdomain':
      case 'nodata':
      case 'invalid-name':
        return { records: [], void: true };
    }
  };

  const matchesAddress = (records: readonly string[], m: Mechanism): boolean => {
    const bits = client.family === 4 ? (m.cidr4 ?? 32) : (m.cidr6 ?? 128);
    return records.some((r) => {
      const bytes = addressBytes(r);
      return bytes !== null && inNetwork(client.bytes, bytes, bits);
    });
  };

  /** §5.5: names for the client's address whose own addresses include it. */
  async function validatedNames(): Promise<string[]> {
    const ptr = await dns.ptr(reverseName(client));
    if (ptr.kind !== 'found') return [];
    const names: string[] = [];
    for (const name of ptr.records.slice(0, MAX_NAMES)) {
      const n = name.replace(/\.$/, '').toLowerCase();
      const forward = client.family === 4 ? await dns.a(n) : await dns.aaaa(n);
      if (forward.kind === 'found' && forward.records.some((r) => { const b = addressBytes(r); return b !== null && b.equals(client.bytes); })) names.push(n);
    }
    return names;
  }

  /** %{p}: a validated name in the current domain if there is one, else any, else "unknown" (§7.3). */
  async function validatedName(current: string): Promise<string> {
    const list = await validated();
    return list.find((n) => n === current || n.endsWith(`.${current}`)) ?? list[0] ?? 'unknown';
  }

  async function mechanism(m: Mechanism, current: string, depth: number): Promise<boolean> {
    switch (m.name) {
      case 'all':
        return true;
      case 'ip4':
      case 'ip6': {
        if ((m.name === 'ip4') !== (client.family === 4)) return false;
        const net = addressBytes(m.address!);
        return net !== null && inNetwork(client.bytes, net, m.name === 'ip4' ? (m.cidr4 ?? 32) : (m.cidr6 ?? 128));
      }
      case 'include': {
        countLookup(m.text);
        const target = await expandDomain(m.domain, current, m.text);
        const r = await evaluate(target, depth + 1);
        switch (r.result) {
          case 'pass':
            return true;
          case 'fail':
          case 'softfail':
          case 'neutral':
            return false;
          case 'temperror':
            throw new Stop('temperror', `include:${target}: ${r.reason}`);
          case 'permerror':
            throw new Stop('permerror', `include:${target}: ${r.reason}`);
          case 'none':
            throw new Stop('permerror', `include:${target} has no SPF record`);
        }
        break;
      }
      case 'a': {
        countLookup(m.text);
        const target = await expandDomain(m.domain, current, m.text);
        const found = await addresses(target);
        if (found.void) countVoid(target);
        return matchesAddress(found.records, m);
      }
      case 'mx': {
        countLookup(m.text);
        const target = await expandDomain(m.domain, current, m.text);
        const mx = await dns.mx(target);
        if (mx.kind === 'temperror') throw new Stop('temperror', `DNS error looking up MX of ${target}: ${mx.detail}`);
        if (mx.kind !== 'found') {
          countVoid(target);
          return false;
        }
        if (mx.records.length > MAX_NAMES) throw new Stop('permerror', `${target} has ${mx.records.length} MX records (at most ${MAX_NAMES} are looked up)`);
        for (const r of mx.records) {
          const found = await addresses(r.exchange.replace(/\.$/, ''));
          if (matchesAddress(found.records, m)) return true;
        }
        return false;
      }
      case 'ptr': {
        countLookup(m.text);
        const target = await expandDomain(m.domain, current, m.text);
        return (await validated()).some((n) => n === target || n.endsWith(`.${target}`));
      }
      case 'exists': {
        countLookup(m.text);
        const target = await expandDomain(m.domain, current, m.text);
        // §5.7: always an A lookup, whatever the client's family.
        const answer = await dns.a(target);
        if (answer.kind === 'temperror') throw new Stop('temperror', `DNS error looking up ${target}: ${answer.detail}`);
        if (answer.kind !== 'found') {
          countVoid(target);
          return false;
        }
        return true;
      }
    }
  }

  interface Evaluated {
    readonly result: SpfResult;
    readonly mechanism: string | undefined;
    readonly explanation: string | undefined;
    readonly reason: string;
  }

  async function explanation(spec: string | undefined, current: string): Promise<string | undefined> {
    if (spec === undefined) return undefined;
    // §6.2: any problem with the explanation leaves the result as it is, without one.
    try {
      const target = await expandDomain(spec, current, 'exp=');
      const txt = await dns.txt(target);
      if (txt.kind !== 'found' || txt.records.length !== 1) return undefined;
      const text = Buffer.concat(txt.records[0]!);
      if (text.some((b) => b > 0x7e)) return undefined;
      const e = await expandMacros(text.toString('latin1'), context(current), true);
      return e.ok ? e.text : undefined;
    } catch {
      return undefined;
    }
  }

  async function evaluate(current: string, depth: number): Promise<Evaluated> {
    if (depth > MAX_DEPTH) throw new Stop('permerror', 'records include each other too deeply');
    const answer = await dns.txt(current);
    if (answer.kind === 'temperror') return { result: 'temperror', mechanism: undefined, explanation: undefined, reason: `DNS error looking up ${current} TXT: ${answer.detail}` };
    if (answer.kind !== 'found') return { result: 'none', mechanism: undefined, explanation: undefined, reason: `no SPF record at ${current}` };
    const selected = selectRecord(answer.records);
    if (selected.kind === 'none') return { result: 'none', mechanism: undefined, explanation: undefined, reason: `no SPF record at ${current}` };
    if (selected.kind === 'permerror') return { result: 'permerror', mechanism: undefined, explanation: undefined, reason: `${current}: ${selected.reason}` };
    const parsed = parseRecordOnce(selected.text);
    if (!parsed.ok) return { result: 'permerror', mechanism: undefined, explanation: undefined, reason: `${current}: ${parsed.reason}` };
    const record = parsed.record;
    for (const m of record.mechanisms) {
      if (!(await mechanism(m, current, depth))) continue;
      const result = QUALIFIED[m.qualifier];
      const exp = result === 'fail' ? await explanation(record.exp, current) : undefined;
      return { result, mechanism: m.text, explanation: exp, reason: `${current}: matched ${m.text}` };
    }
    if (record.redirect !== undefined) {
      countLookup(`redirect=${record.redirect}`);
      const target = await expandDomain(record.redirect, current, 'redirect=');
      const r = await evaluate(target, depth + 1);
      // §6.1: a redirect to a domain with no SPF record is a permerror.
      if (r.result === 'none') return { ...r, result: 'permerror', reason: `redirect=${target} has no SPF record` };
      return r;
    }
    return { result: 'neutral', mechanism: undefined, explanation: undefined, reason: `${current}: no mechanism matched` };
  }

  try {
    const r = await evaluate(domain, 0);
    return Object.assign({}, base, r);
  } catch (err) {
    if (err instanceof Stop) return { ...base, result: err.result, mechanism: undefined, explanation: undefined, reason: err.message };
    throw err;
  }
}
