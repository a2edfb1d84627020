/**
 * The listener tables `[out]` and `[in]`, and `[dns]`: addresses, limits,
 * timeouts, TLS. `checkListenerFiles` is the part that touches the file
 * system (spool directory, TLS files), run once the tables are sound.
 */
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { DnsConfig, HostPort, InboundCheck, InListenerConfig, ListenerConfig, OutListenerConfig } from './types.js';
import type { Raw, Validator } from './validate.js';

const LISTENER_KEYS = [
  'listen', 'relay', 'protocol', 'relay_protocol', 'allow_clients', 'max_message_bytes', 'spool_threshold', 'spool_dir', 'max_header_bytes', 'max_header_fields',
  'max_connections', 'max_connections_per_client', 'idle_timeout', 'command_timeout', 'data_timeout', 'relay_timeout', 'hostname', 'tls_cert', 'tls_key', 'relay_tls',
  'proxy_protocol_from',
];
const OUT_KEYS = [...LISTENER_KEYS, 'arc_seal', 'auth_users_file', 'sign_condition', 'transport_encoding'];
const IN_KEYS = [
  ...LISTENER_KEYS, 'authserv_id', 'max_signatures', 'legacy_sha1', 'allow_short_keys', 'checks', 'received_spf', 'spf_mailfrom', 'reject_fail', 'reject_error',
  'x_dkim_authentication_results', 'arc_seal', 'arc_trusted_sealers',
];
const CHECKS = ['dkim', 'spf', 'dmarc', 'arc'] as const;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*$/;

/** `host:port` or `[v6]:port`; port 0 (any free port) only where `anyPort`. */
export function parseHostPort(text: string, anyPort = false): HostPort | null {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  if (!m) return null;
  const port = Number(m[2]);
  const host = m[1]!;
  if (!((port >= 1 || (anyPort && port === 0)) && port <= 65535)) return null;
  if (isIP(host) === 0 && !/^[A-Za-z0-9.-]+$/.test(host)) return null;
  return { host, port };
}

/** `addr/prefix` (or a bare address); returns the normalized CIDR. */
export function parseCidr(text: string): string | null {
  const [addr = '', prefix] = text.split('/');
  const family = isIP(addr);
  if (family === 0) return null;
  const max = family === 4 ? 32 : 128;
  if (prefix === undefined) return `${addr}/${max}`;
  if (!/^\d+$/.test(prefix) || Number(prefix) > max) return null;
  return `${addr}/${Number(prefix)}`;
}

export function readHostPort(v: Validator, raw: Raw, path: readonly string[], key: string, anyPort = false): HostPort | undefined {
  const text = v.string(raw, path, key);
  if (text === undefined) return undefined;
  const hp = parseHostPort(text, anyPort);
  if (hp === null) v.error([...path, key], `expected "host:port" (IPv6 as "[::1]:port"), got "${text}"`);
  return hp ?? undefined;
}

function readBase(v: Validator, raw: Raw, name: 'out' | 'in', keys: readonly string[]): { readonly t: Raw; readonly base: ListenerConfig } | undefined {
  const t = v.table(raw, [], name);
  if (t === undefined) return undefined;
  const path = [name];
  v.known(t, path, keys);
  const listen = readHostPort(v, t, path, 'listen', true);
  const relay = readHostPort(v, t, path, 'relay');
  if (t['listen'] === undefined) v.error([...path, 'listen'], 'required: the address to listen on, e.g. "127.0.0.1:10027"');
  if (t['relay'] === undefined) v.error([...path, 'relay'], 'required: the next hop, e.g. "127.0.0.1:10028"');
  const cidrs = (key: string, fallback: readonly string[]): string[] => {
    const out: string[] = [];
    for (const a of v.strings(t, path, key) ?? fallback) {
      const c = parseCidr(a);
      if (c === null) v.error([...path, key], `expected an address or CIDR block such as "192.0.2.0/24", got "${a}"`);
      else out.push(c);
    }
    return out;
  };
  const allowClients = cidrs('allow_clients', ['127.0.0.1/32', '::1/128']);
  // The load balancers that put a PROXY header before their clients' bytes.
  const proxyProtocolFrom = cidrs('proxy_protocol_from', []);
  const tlsCert = v.string(t, path, 'tls_cert');
  const tlsKey = v.string(t, path, 'tls_key');
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    v.error([...path, tlsCert === undefined ? 'tls_key' : 'tls_cert'], `needs ${tlsCert === undefined ? 'tls_cert' : 'tls_key'} too: the certificate and its key go together`);
  }
  const maxMessageBytes = v.size(t, path, 'max_message_bytes') ?? 50 * 1024 * 1024;
  const maxConnections = v.integer(t, path, 'max_connections', 1, 100_000) ?? 200;
  const protocol = v.oneOf(t, path, 'protocol', ['smtp', 'lmtp'] as const) ?? 'smtp';
  const relayProtocol = v.oneOf(t, path, 'relay_protocol', ['smtp', 'lmtp'] as const) ?? 'smtp';
  if (protocol === 'smtp' && relayProtocol === 'lmtp') {
    // One SMTP reply to DATA cannot say "delivered to bob, not to carol": either answer loses or duplicates mail.
    v.error([...path, 'relay_protocol'], 'an SMTP listener cannot pass on an LMTP next hop\'s per-recipient results truthfully (one recipient delivered, another refused): set protocol = "lmtp" as well, or relay over SMTP');
  }
  const base: ListenerConfig = {
    listen: listen ?? { host: '127.0.0.1', port: 0 },
    relay: relay ?? { host: '127.0.0.1', port: 0 },
    protocol,
    relayProtocol,
    allowClients: Object.freeze(allowClients),
    proxyProtocolFrom: Object.freeze(proxyProtocolFrom),
    maxMessageBytes,
    spoolThresholdBytes: v.size(t, path, 'spool_threshold') ?? 1024 * 1024,
    spoolDir: v.string(t, path, 'spool_dir'),
    maxHeaderBytes: v.size(t, path, 'max_header_bytes') ?? 256 * 1024,
    maxHeaderFields: v.integer(t, path, 'max_header_fields', 10, 100_000) ?? 1000,
    maxConnections,
    maxConnectionsPerClient: v.integer(t, path, 'max_connections_per_client', 1, 100_000) ?? Math.min(50, maxConnections),
    idleTimeoutMs: (v.duration(t, path, 'idle_timeout') ?? 300) * 1000,
    // Postfix's smtpd_timeout (300 s), as a deadline; the message gets twice that.
    commandTimeoutMs: (v.duration(t, path, 'command_timeout') ?? 300) * 1000,
    dataTimeoutMs: (v.duration(t, path, 'data_timeout') ?? 600) * 1000,
    relayTimeoutMs: (v.duration(t, path, 'relay_timeout') ?? 120) * 1000,
    hostname: v.string(t, path, 'hostname') ?? hostname(),
    tls: tlsCert !== undefined && tlsKey !== undefined ? { cert: tlsCert, key: tlsKey } : undefined,
    relayTls: v.oneOf(t, path, 'relay_tls', ['off', 'opportunistic', 'required'] as const) ?? 'opportunistic',
  };
  return { t, base };
}

/** `[out]`: the signing listener. */
export function readOutListener(v: Validator, raw: Raw): OutListenerConfig | undefined {
  const r = readBase(v, raw, 'out', OUT_KEYS);
  if (!r) return undefined;
  const path = ['out'];
  const authUsersFile = v.string(r.t, path, 'auth_users_file');
  const signCondition = v.oneOf(r.t, path, 'sign_condition', ['can_relay', 'auth_user'] as const) ?? 'can_relay';
  if (signCondition === 'auth_user' && authUsersFile === undefined) v.error([...path, 'sign_condition'], '"auth_user" signs for authenticated users only: set auth_users_file too');
  // The users come with the files phase (load.ts), once the tables are sound.
  // "7bit" by default: only messages a 7-bit hop would change are converted, and those are the ones whose signatures would break.
  const transportEncoding = v.oneOf(r.t, path, 'transport_encoding', ['7bit', 'preserve'] as const) ?? '7bit';
  return Object.freeze({ ...r.base, arcSeal: v.bool(r.t, path, 'arc_seal') ?? false, authUsersFile, authUsers: undefined, signCondition, transportEncoding });
}

/** `[in]`: the verifying listener, with what verification needs. */
export function readInListener(v: Validator, raw: Raw): InListenerConfig | undefined {
  const r = readBase(v, raw, 'in', IN_KEYS);
  if (!r) return undefined;
  const path = ['in'];
  const named = v.strings(r.t, path, 'checks') ?? [...CHECKS];
  const checks: InboundCheck[] = [];
  for (const c of named) {
    const lower = c.toLowerCase();
    if (!(CHECKS as readonly string[]).includes(lower)) v.error([...path, 'checks'], `expected some of ${CHECKS.map((k) => `"${k}"`).join(', ')}, got "${c}"`);
    else if (!checks.includes(lower as InboundCheck)) checks.push(lower as InboundCheck);
  }
  if (checks.includes('dmarc') && !checks.includes('dkim') && !checks.includes('spf')) v.error([...path, 'checks'], 'dmarc needs "dkim" or "spf" (or both) among the checks: it decides on their results');
  else if (checks.includes('dmarc') && !(checks.includes('dkim') && checks.includes('spf'))) v.warn([...path, 'checks'], `dmarc without ${checks.includes('dkim') ? 'spf' : 'dkim'}: only ${checks.includes('dkim') ? 'DKIM' : 'SPF'} alignment can make DMARC pass`);
  const rejectFail = v.bool(r.t, path, 'reject_fail') ?? false;
  if (rejectFail && !checks.includes('dmarc')) v.error([...path, 'reject_fail'], 'rejects on the DMARC result: add "dmarc" to [in] checks, or set reject_fail = false');
  const trusted: string[] = [];
  for (const d of v.strings(r.t, path, 'arc_trusted_sealers') ?? []) {
    const lower = d.toLowerCase().replace(/\.$/, '');
    if (!DOMAIN.test(lower)) v.error([...path, 'arc_trusted_sealers'], `expected domain names (the d= of the sealers' ARC-Seal), got "${d}"`);
    else trusted.push(lower);
  }
  if (trusted.length > 0 && !(checks.includes('arc') && checks.includes('dmarc'))) {
    v.error([...path, 'arc_trusted_sealers'], 'trusted sealers change the DMARC disposition after ARC validation: add "arc" and "dmarc" to [in] checks');
  }
  return Object.freeze({
    ...r.base,
    checks: Object.freeze(checks),
    receivedSpf: v.bool(r.t, path, 'received_spf') ?? false,
    spfMailfrom: v.oneOf(r.t, path, 'spf_mailfrom', ['address', 'domain'] as const) ?? 'address',
    rejectFail,
    rejectError: v.bool(r.t, path, 'reject_error') ?? false,
    xDkimAuthenticationResults: v.bool(r.t, path, 'x_dkim_authentication_results') ?? false,
    arcSeal: v.bool(r.t, path, 'arc_seal') ?? false,
    arcTrustedSealers: Object.freeze(trusted),
    authservId: v.string(r.t, path, 'authserv_id') ?? r.base.hostname,
    maxSignatures: v.integer(r.t, path, 'max_signatures', 1, 50) ?? 10,
    allowSha1: v.bool(r.t, path, 'legacy_sha1') ?? false,
    allowShortKeys: v.bool(r.t, path, 'allow_short_keys') ?? false,
  });
}

/**
 * What a listener needs from the file system, checked at load rather than
 * found missing at the first large message (which would then be deferred,
 * and every one after it) or at the first STARTTLS.
 */
export async function checkListenerFiles(v: Validator, name: 'out' | 'in', l: ListenerConfig, cwd: string): Promise<void> {
  if (l.spoolDir !== undefined) {
    const full = resolve(cwd, l.spoolDir);
    try {
      if (!(await stat(full)).isDirectory()) v.error([name, 'spool_dir'], `${full} is not a directory`);
      else await access(full, constants.W_OK | constants.X_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      v.error([name, 'spool_dir'], `cannot write to ${full}: ${code} (make it, writable only by the user dkim-proxy runs as: install -d -m 0700 ${full})`);
    }
  }
  if (l.tls) {
    const read = async (key: 'tls_cert' | 'tls_key', full: string): Promise<Buffer | undefined> => {
      try {
        return await readFile(full);
      } catch (err) {
        v.error([name, key], `cannot read ${full}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        return undefined;
      }
    };
    const [certFile, keyFile] = [resolve(cwd, l.tls.cert), resolve(cwd, l.tls.key)];
    const [cert, key] = [await read('tls_cert', certFile), await read('tls_key', keyFile)];
    if (cert && key) {
      try {
        createSecureContext({ cert, key });
      } catch (err) {
        v.error([name, 'tls_cert'], `${certFile} with ${keyFile}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}

export function readDns(v: Validator, raw: Raw): DnsConfig {
  const t = v.table(raw, [], 'dns') ?? {};
  v.known(t, ['dns'], ['servers', 'timeout_ms', 'cache_ttl', 'negative_ttl', 'cache_entries']);
  const servers = v.strings(t, ['dns'], 'servers') ?? [];
  for (const s of servers) {
    if (isIP(s) === 0 && parseHostPort(s) === null) v.error(['dns', 'servers'], `expected an IP address or "ip:port", got "${s}"`);
  }
  return Object.freeze({
    servers: Object.freeze([...servers]),
    timeoutMs: v.integer(t, ['dns'], 'timeout_ms', 100, 60_000) ?? 5000,
    // 0: nothing is cached (every lookup asks DNS), for debugging a zone and for the cold benchmark.
    cacheTtlSeconds: v.duration(t, ['dns'], 'cache_ttl', { zero: true }) ?? 3600,
    negativeTtlSeconds: v.duration(t, ['dns'], 'negative_ttl', { zero: true }) ?? 300,
    cacheEntries: v.integer(t, ['dns'], 'cache_entries', 1, 10_000_000) ?? 10_000,
  });
}
