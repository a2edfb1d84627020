/**
 * Loading the TOML file: read, parse, validate into ProxyConfig, load and
 * check every private key, freeze. Every problem is reported at once, each
 * with the file, line, key and what was expected.
 */
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { availableParallelism, hostname } from 'node:os';
import { createSecureContext } from 'node:tls';
import { resolve } from 'node:path';
import { domainToASCII } from 'node:url';
import TOML from '@iarna/toml';
import { parseCanonicalization, parsePrivateKey, PreparedSigner, SIGNING_ALGORITHMS, SignRequestError, type SignRequest, type SigningAlgorithm, type SigningKey } from '../dkim/index.js';
import { DEFAULT_SIGNED_HEADERS } from '../dkim/sign.js';
import { algorithmParts, isDomainName, isSameOrSubdomain, isSelector } from '../dkim/signature.js';
import { Locator } from './locate.js';
import type {
  AdditionalPolicy,
  DnsConfig,
  DnsPolicy,
  DomainBlock,
  HostPort,
  InListenerConfig,
  ListenerConfig,
  ProxyConfig,
  SignatureBlock,
  SignatureSettings,
  Signer,
  SigningConfig,
} from './types.js';
import { isTable, Validator, type ConfigIssue, type Raw } from './validate.js';
import { vaultKeyReader, type KeyRead, type KeyRef, type VaultSettings } from './vault.js';

export type { ConfigIssue } from './validate.js';

export type LoadResult =
  | { readonly ok: true; readonly config: ProxyConfig; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[]; readonly warnings: readonly ConfigIssue[] };

export interface LoadOptions {
  /** Relative key paths are resolved against this directory (default: the process's). */
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** A key a config names, as `keyRefs` lists them. */
export interface NeededKey {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: SigningAlgorithm;
  /** The key_file template expanded (relative paths as written). */
  readonly keyFile: string;
}

export type KeyRefsResult = { readonly ok: true; readonly keys: readonly NeededKey[] } | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

/** The keys a config names, validated but without reading them (to make them for a new config). */
export async function keyRefs(file: string, options: LoadOptions = {}): Promise<KeyRefsResult> {
  const r = await load(file, options, 'refs');
  if (r.kind === 'refs') return { ok: true, keys: r.keys };
  return r.result.ok ? { ok: true, keys: [] } : { ok: false, issues: r.result.issues };
}

const TOP_KEYS = ['out', 'in', 'dns', 'signing', 'domain', 'signature', 'log', 'metrics', 'workers'];
const SETTINGS_KEYS = ['selector', 'algorithm', 'canonicalization', 'headers', 'over_sign', 'key_file', 'identity', 'expire', 'body_length', 'copy_headers'];
const SIGNING_KEYS = [...SETTINGS_KEYS, 'policy', 'additional_signatures', 'single_signature', 'unsigned', 'legacy_sha1', 'vault_addr', 'vault_mount', 'vault_path_prefix', 'vault_token_file'];
const DOMAIN_KEYS = [...SETTINGS_KEYS, 'subdomains', 'policy', 'additional_signatures'];
const SIGNATURE_KEYS = [...SETTINGS_KEYS, 'domain', 'policy'];
const LISTENER_KEYS = [
  'listen', 'relay', 'protocol', 'relay_protocol', 'allow_clients', 'max_message_bytes', 'spool_threshold', 'spool_dir', 'max_header_bytes', 'max_header_fields',
  'max_connections', 'max_connections_per_client', 'idle_timeout', 'command_timeout', 'data_timeout', 'relay_timeout', 'hostname', 'tls_cert', 'tls_key', 'relay_tls',
];
const IN_KEYS = [...LISTENER_KEYS, 'authserv_id', 'max_signatures', 'legacy_sha1', 'allow_short_keys'];
const DNS_POLICIES: readonly DnsPolicy[] = ['SignAlways', 'SignOnlyIfInDNS', 'TempFailIfNotInDNS'];
const ADDITIONAL_POLICIES: readonly AdditionalPolicy[] = ['Always', 'OnlyIfMissingDomainBlock'];
const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]+?[?*+]?$/;

export const DEFAULT_SETTINGS: SignatureSettings = {
  selector: 'default',
  algorithm: 'rsa-sha256',
  canonicalization: { header: 'relaxed', body: 'relaxed' },
  headers: DEFAULT_SIGNED_HEADERS,
  overSign: true,
  keyFile: 'keys/%{d}/%{s}.key',
  identity: undefined,
  expire: undefined,
  bodyLength: false,
  copyHeaders: false,
};

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

function normalizeDomain(name: string): string | null {
  const ascii = domainToASCII(name.toLowerCase().replace(/\.$/, ''));
  return ascii !== '' && isDomainName(ascii) ? ascii : null;
}

interface PendingSigner {
  readonly path: readonly string[];
  readonly domain: string;
  readonly settings: SignatureSettings;
}

export async function loadConfig(file: string, options: LoadOptions = {}): Promise<LoadResult> {
  const r = await load(file, options, 'full');
  if (r.kind === 'refs') throw new Error('unreachable: a full load lists no refs');
  return r.result;
}

type Loaded = { readonly kind: 'full'; readonly result: LoadResult } | { readonly kind: 'refs'; readonly keys: readonly NeededKey[] };

async function load(file: string, options: LoadOptions, mode: 'full' | 'refs'): Promise<Loaded> {
  const done = (result: LoadResult): Loaded => ({ kind: 'full', result });
  const warnings: ConfigIssue[] = [];
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return done({ ok: false, issues: [{ key: '', line: undefined, message: `cannot read the file: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }], warnings });
  }
  let raw: Raw;
  try {
    raw = TOML.parse(text) as Raw;
  } catch (err) {
    const e = err as { line?: number; col?: number; message: string };
    const where = e.line === undefined ? undefined : e.line + 1;
    return done({ ok: false, issues: [{ key: '', line: where, message: `TOML syntax: ${e.message.split('\n')[0]}` }], warnings });
  }

  const v = new Validator(new Locator(text));
  const warn = (path: readonly string[], message: string): void => {
    const before = v.issues.length;
    v.error(path, message);
    warnings.push(...v.issues.splice(before));
  };
  v.known(raw, [], TOP_KEYS);

  const signingRaw = v.table(raw, [], 'signing') ?? {};
  v.known(signingRaw, ['signing'], SIGNING_KEYS);
  const defaults = readSettings(v, signingRaw, ['signing'], DEFAULT_SETTINGS);
  const legacySha1 = v.bool(signingRaw, ['signing'], 'legacy_sha1') ?? false;
  const defaultPolicy = v.oneOf(signingRaw, ['signing'], 'policy', DNS_POLICIES) ?? 'SignAlways';
  const defaultAdditional = v.strings(signingRaw, ['signing'], 'additional_signatures') ?? [];
  const pending: PendingSigner[] = [];

  // [signature."name"] blocks: third-party and double signing.
  const signatureBlocks = new Map<string, { policy: AdditionalPolicy; pending: PendingSigner }>();
  const signaturesRaw = v.table(raw, [], 'signature') ?? {};
  for (const [name, value] of Object.entries(signaturesRaw)) {
    const path = ['signature', name];
    if (!isTable(value)) {
      v.error(path, 'expected a table');
      continue;
    }
    v.known(value, path, SIGNATURE_KEYS);
    const settings = readSettings(v, value, path, defaults);
    const policy = v.oneOf(value, path, 'policy', ADDITIONAL_POLICIES) ?? 'Always';
    const domainText = v.string(value, path, 'domain');
    if (domainText === undefined) {
      v.error([...path, 'domain'], 'required: the signing domain (d=) of this signature');
      continue;
    }
    const domain = normalizeDomain(domainText);
    if (domain === null) {
      v.error([...path, 'domain'], `expected a domain name, got "${domainText}"`);
      continue;
    }
    const p = { path, domain, settings };
    pending.push(p);
    signatureBlocks.set(name, { policy, pending: p });
  }

  const checkNames = (names: readonly string[], path: readonly string[]): void => {
    for (const n of names) {
      if (!signatureBlocks.has(n)) {
        const known = [...signatureBlocks.keys()];
        v.error(path, `no [signature."${n}"] block${known.length ? ` (have: ${known.join(', ')})` : ''}`);
      }
    }
  };
  checkNames(defaultAdditional, ['signing', 'additional_signatures']);

  // [domain."example.com"] blocks, matched on the author domain.
  const domainBlocks = new Map<string, { subdomains: boolean; policy: DnsPolicy; additional: string[]; pending: PendingSigner }>();
  const domainsRaw = v.table(raw, [], 'domain') ?? {};
  for (const [name, value] of Object.entries(domainsRaw)) {
    const path = ['domain', name];
    if (!isTable(value)) {
      v.error(path, 'expected a table of signing settings');
      continue;
    }
    v.known(value, path, DOMAIN_KEYS);
    const domain = normalizeDomain(name);
    if (domain === null) {
      v.error(path, `"${name}" is not a domain name`);
      continue;
    }
    if (domainBlocks.has(domain)) {
      v.error(path, `a second block for ${domain}`);
      continue;
    }
    const settings = readSettings(v, value, path, defaults);
    const additional = v.strings(value, path, 'additional_signatures') ?? defaultAdditional;
    checkNames(additional, [...path, 'additional_signatures']);
    const p = { path, domain, settings };
    pending.push(p);
    domainBlocks.set(domain, {
      subdomains: v.bool(value, path, 'subdomains') ?? false,
      policy: v.oneOf(value, path, 'policy', DNS_POLICIES) ?? defaultPolicy,
      additional,
      pending: p,
    });
  }

  // Checks that need the domain: identity within d=, sha1 only with the legacy switch, warnings.
  for (const p of pending) {
    const s = p.settings;
    if (s.identity !== undefined) {
      const at = s.identity.lastIndexOf('@');
      if (at === -1 || !isSameOrSubdomain(s.identity.slice(at + 1).toLowerCase(), p.domain)) {
        v.error([...p.path, 'identity'], `expected an identity within ${p.domain} (such as "@${p.domain}"), got "${s.identity}"`);
      }
    }
    if (s.algorithm === 'rsa-sha1') {
      if (!legacySha1) v.error([...p.path, 'algorithm'], 'rsa-sha1 is forbidden for signing by RFC 8301; set [signing] legacy_sha1 = true to use it anyway');
      else warn([...p.path, 'algorithm'], 'rsa-sha1 signatures are not accepted by most receivers (RFC 8301)');
    }
    if (s.bodyLength) warn([...p.path, 'body_length'], 'l= lets anyone append content below the signed part (RFC 6376 §8.2)');
  }
  for (const [domain, block] of domainBlocks) {
    if (block.pending.settings.algorithm !== 'ed25519-sha256') continue;
    const rsaToo = block.additional.some((n) => signatureBlocks.get(n)?.pending.settings.algorithm.startsWith('rsa'));
    if (!rsaToo) warn([...block.pending.path, 'algorithm'], `${domain} is signed with ed25519 only; Gmail and Debian 12's Mail::DKIM cannot verify it: add an RSA signature (dual signing)`);
  }

  const vault = readVault(v, signingRaw, options.env ?? process.env);
  const out = readListener(v, raw, 'out', LISTENER_KEYS);
  const inListener = readListener(v, raw, 'in', IN_KEYS);
  const dns = readDns(v, raw);
  const logRaw = v.table(raw, [], 'log') ?? {};
  v.known(logRaw, ['log'], ['level', 'format']);
  const metricsRaw = v.table(raw, [], 'metrics') ?? {};
  v.known(metricsRaw, ['metrics'], ['listen']);
  const metricsListen = readHostPort(v, metricsRaw, ['metrics'], 'listen', true);
  if (metricsListen && !/^(127\.|::1$|localhost$)/.test(metricsListen.host)) warn(['metrics', 'listen'], `serves metrics and health on ${metricsListen.host}, beyond this host: keep it behind a firewall`);
  const workers = v.integer(raw, [], 'workers', 1, 256) ?? availableParallelism();
  for (const l of [out, inListener]) {
    if (l && l.allowClients.some((c) => c.endsWith('/0'))) warn([l === out ? 'out' : 'in', 'allow_clients'], 'allows every address: an open signing proxy signs spam for anyone');
  }

  if (v.issues.length > 0) return done({ ok: false, issues: v.issues, warnings });
  if (mode === 'refs') {
    const seen = new Set<string>();
    const refs: NeededKey[] = [];
    for (const p of pending) {
      const keyFile = expandKeyPath(p.settings.keyFile, p.domain, p.settings.selector);
      if (seen.has(keyFile)) continue;
      seen.add(keyFile);
      refs.push({ domain: p.domain, selector: p.settings.selector, algorithm: p.settings.algorithm, keyFile });
    }
    return { kind: 'refs', keys: refs };
  }

  // Files last: only for a config that is otherwise sound, all errors together.
  const keys = new Map<string, { key: SigningKey; source: string }>();
  const prepared = new Map<PendingSigner, PreparedSigner>();
  {
    for (const [name, l] of [['out', out], ['in', inListener]] as const) if (l) await checkListenerFiles(v, name, l, options.cwd ?? process.cwd());
    const readKey = vault ? vaultKeyReader(vault) : fileKeyReader(options.cwd ?? process.cwd(), (path, message) => warn(path, message));
    for (const p of pending) {
      const id = expandKeyPath(p.settings.keyFile, p.domain, p.settings.selector);
      if (keys.has(id)) continue;
      const got = await readKey({ domain: p.domain, selector: p.settings.selector, keyFile: id }, [...p.path, vault ? 'selector' : 'key_file']);
      if (!got.ok) {
        v.error([...p.path, vault ? 'selector' : 'key_file'], got.message);
        continue;
      }
      const parsed = parsePrivateKey(got.pem);
      if (!parsed.ok) {
        v.error([...p.path, 'key_file'], `${got.source}: ${parsed.message}`);
        continue;
      }
      keys.set(id, { key: parsed.key, source: got.source });
    }
    for (const p of pending) {
      const k = keys.get(expandKeyPath(p.settings.keyFile, p.domain, p.settings.selector));
      if (k && algorithmParts(p.settings.algorithm).keyType !== k.key.keyType) {
        v.error([...p.path, 'algorithm'], `${p.settings.algorithm} needs an ${algorithmParts(p.settings.algorithm).keyType} key, but ${k.source} holds an ${k.key.keyType} key`);
      }
    }
    // The engine's own checks, once: a signer that passes them is never checked again per message.
    for (const p of pending) {
      const k = keys.get(expandKeyPath(p.settings.keyFile, p.domain, p.settings.selector));
      if (!k || algorithmParts(p.settings.algorithm).keyType !== k.key.keyType) continue;
      try {
        prepared.set(p, PreparedSigner.prepare(signRequestOf(p, k.key)));
      } catch (err) {
        if (!(err instanceof SignRequestError)) throw err;
        v.error(p.path, err.message);
      }
    }
    if (v.issues.length > 0) return done({ ok: false, issues: v.issues, warnings });
  }

  const makeSigner = (p: PendingSigner): Signer => {
    const k = keys.get(expandKeyPath(p.settings.keyFile, p.domain, p.settings.selector));
    const ready = prepared.get(p);
    if (!k || !ready) throw new Error(`unreachable: ${p.path.join('.')} has no prepared key`);
    return Object.freeze({ ...p.settings, domain: p.domain, keySource: k.source, key: k.key, prepared: ready });
  };
  const signing: SigningConfig = Object.freeze({
    domains: new Map<string, DomainBlock>(
      [...domainBlocks].map(([d, b]) => [d, Object.freeze({ name: d, subdomains: b.subdomains, policy: b.policy, additionalSignatures: Object.freeze([...b.additional]), signer: makeSigner(b.pending) })]),
    ),
    signatures: new Map<string, SignatureBlock>([...signatureBlocks].map(([n, b]) => [n, Object.freeze({ name: n, policy: b.policy, signer: makeSigner(b.pending) })])),
    defaultAdditional: Object.freeze([...defaultAdditional]),
    singleSignature: v.bool(signingRaw, ['signing'], 'single_signature') ?? false,
    unsigned: v.oneOf(signingRaw, ['signing'], 'unsigned', ['relay', 'refuse'] as const) ?? 'relay',
  });
  const config: ProxyConfig = Object.freeze({
    file: resolve(file),
    out,
    in: inListener,
    dns,
    signing,
    log: Object.freeze({
      level: v.oneOf(logRaw, ['log'], 'level', ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const) ?? 'info',
      format: v.oneOf(logRaw, ['log'], 'format', ['auto', 'json', 'pretty'] as const) ?? 'auto',
    }),
    metrics: Object.freeze({ listen: metricsListen }),
    workers,
  });
  return done({ ok: true, config, warnings });
}

function signRequestOf(p: PendingSigner, key: SigningKey): SignRequest {
  const s = p.settings;
  return {
    domain: p.domain,
    selector: s.selector,
    key,
    algorithm: s.algorithm,
    canonicalization: s.canonicalization,
    headers: s.headers,
    overSign: s.overSign,
    ...(s.identity !== undefined ? { identity: s.identity } : {}),
    ...(s.expire !== undefined ? { expiresIn: s.expire } : {}),
    bodyLength: s.bodyLength,
    copyHeaders: s.copyHeaders,
    // The loader refuses rsa-sha1 unless [signing] legacy_sha1 is on.
    allowSha1: s.algorithm === 'rsa-sha1',
  };
}

export function expandKeyPath(template: string, domain: string, selector: string): string {
  return template.replace(/%\{d\}/g, domain).replace(/%\{s\}/g, selector);
}

function fileKeyReader(cwd: string, warn: (path: readonly string[], message: string) => void) {
  return async ({ keyFile }: KeyRef, path: readonly string[]): Promise<KeyRead> => {
    const full = resolve(cwd, keyFile);
    try {
      const pem = await readFile(full);
      const mode = (await stat(full)).mode;
      if (mode & 0o077) warn(path, `${full} is readable by group or others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`);
      return { ok: true, pem, source: full };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const hint = code === 'ENOENT' ? ' (make one with: dkim-proxy keygen)' : '';
      return { ok: false, message: `cannot read key ${full}: ${code ?? String(err)}${hint}` };
    }
  };
}

function readSettings(v: Validator, raw: Raw, path: readonly string[], base: SignatureSettings): SignatureSettings {
  const selector = v.string(raw, path, 'selector');
  if (selector !== undefined && !isSelector(selector)) v.error([...path, 'selector'], `expected a DNS label (a-z 0-9 - _, up to 63), got "${selector}"`);
  const algorithm = v.oneOf(raw, path, 'algorithm', SIGNING_ALGORITHMS as readonly SigningAlgorithm[]);
  const canonText = v.string(raw, path, 'canonicalization');
  let canonicalization = base.canonicalization;
  if (canonText !== undefined) {
    const c = parseCanonicalization(canonText);
    if (c === null || !/^(simple|relaxed)\/(simple|relaxed)$/.test(canonText)) {
      v.error([...path, 'canonicalization'], `expected "relaxed/relaxed", "simple/simple", "relaxed/simple" or "simple/relaxed", got "${canonText}"`);
    } else {
      canonicalization = c;
    }
  }
  let headers = base.headers;
  const rawHeaders = raw['headers'];
  if (rawHeaders !== undefined) {
    const list = typeof rawHeaders === 'string' ? rawHeaders.split(':').filter(Boolean) : v.strings(raw, path, 'headers');
    if (list !== undefined) {
      const bad = list.filter((h) => !HEADER_NAME.test(h));
      if (bad.length > 0) v.error([...path, 'headers'], `not header names: ${bad.map((b) => JSON.stringify(b)).join(', ')}`);
      else if (!list.some((h) => h.replace(/[?*+]$/, '').toLowerCase() === 'from')) v.error([...path, 'headers'], 'must include From (RFC 6376 §5.4)');
      else headers = Object.freeze([...list]);
    }
  }
  const keyFile = v.string(raw, path, 'key_file');
  return Object.freeze({
    selector: selector ?? base.selector,
    algorithm: algorithm ?? base.algorithm,
    canonicalization,
    headers,
    overSign: v.bool(raw, path, 'over_sign') ?? base.overSign,
    keyFile: keyFile ?? base.keyFile,
    identity: v.string(raw, path, 'identity') ?? base.identity,
    expire: v.duration(raw, path, 'expire') ?? base.expire,
    bodyLength: v.bool(raw, path, 'body_length') ?? base.bodyLength,
    copyHeaders: v.bool(raw, path, 'copy_headers') ?? base.copyHeaders,
  });
}

function readHostPort(v: Validator, raw: Raw, path: readonly string[], key: string, anyPort = false): HostPort | undefined {
  const text = v.string(raw, path, key);
  if (text === undefined) return undefined;
  const hp = parseHostPort(text, anyPort);
  if (hp === null) v.error([...path, key], `expected "host:port" (IPv6 as "[::1]:port"), got "${text}"`);
  return hp ?? undefined;
}

function readListener<K extends 'out' | 'in'>(v: Validator, raw: Raw, name: K, keys: readonly string[]): (K extends 'in' ? InListenerConfig : ListenerConfig) | undefined {
  const t = v.table(raw, [], name);
  if (t === undefined) return undefined;
  const path = [name];
  v.known(t, path, keys);
  const listen = readHostPort(v, t, path, 'listen', true);
  const relay = readHostPort(v, t, path, 'relay');
  if (t['listen'] === undefined) v.error([...path, 'listen'], 'required: the address to listen on, e.g. "127.0.0.1:10027"');
  if (t['relay'] === undefined) v.error([...path, 'relay'], 'required: the next hop, e.g. "127.0.0.1:10028"');
  const allowRaw = v.strings(t, path, 'allow_clients') ?? ['127.0.0.1/32', '::1/128'];
  const allowClients: string[] = [];
  for (const a of allowRaw) {
    const c = parseCidr(a);
    if (c === null) v.error([...path, 'allow_clients'], `expected an address or CIDR block such as "192.0.2.0/24", got "${a}"`);
    else allowClients.push(c);
  }
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
  if (name === 'out') return Object.freeze(base) as K extends 'in' ? InListenerConfig : ListenerConfig;
  const inConfig: InListenerConfig = {
    ...base,
    authservId: v.string(t, path, 'authserv_id') ?? base.hostname,
    maxSignatures: v.integer(t, path, 'max_signatures', 1, 50) ?? 10,
    allowSha1: v.bool(t, path, 'legacy_sha1') ?? false,
    allowShortKeys: v.bool(t, path, 'allow_short_keys') ?? false,
  };
  return Object.freeze(inConfig) as K extends 'in' ? InListenerConfig : ListenerConfig;
}

/**
 * What a listener needs from the file system, checked at load rather than
 * found missing at the first large message (which would then be deferred,
 * and every one after it) or at the first STARTTLS.
 */
async function checkListenerFiles(v: Validator, name: 'out' | 'in', l: ListenerConfig, cwd: string): Promise<void> {
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

function readDns(v: Validator, raw: Raw): DnsConfig {
  const t = v.table(raw, [], 'dns') ?? {};
  v.known(t, ['dns'], ['servers', 'timeout_ms', 'cache_ttl', 'negative_ttl', 'cache_entries']);
  const servers = v.strings(t, ['dns'], 'servers') ?? [];
  for (const s of servers) {
    if (isIP(s) === 0 && parseHostPort(s) === null) v.error(['dns', 'servers'], `expected an IP address or "ip:port", got "${s}"`);
  }
  return Object.freeze({
    servers: Object.freeze([...servers]),
    timeoutMs: v.integer(t, ['dns'], 'timeout_ms', 100, 60_000) ?? 5000,
    cacheTtlSeconds: v.duration(t, ['dns'], 'cache_ttl') ?? 3600,
    negativeTtlSeconds: v.duration(t, ['dns'], 'negative_ttl') ?? 300,
    cacheEntries: v.integer(t, ['dns'], 'cache_entries', 1, 10_000_000) ?? 10_000,
  });
}

function readVault(v: Validator, signing: Raw, env: Readonly<Record<string, string | undefined>>): VaultSettings | undefined {
  const addr = v.string(signing, ['signing'], 'vault_addr') ?? env['VAULT_ADDR'];
  const mount = v.string(signing, ['signing'], 'vault_mount');
  const prefix = v.string(signing, ['signing'], 'vault_path_prefix');
  const tokenFile = v.string(signing, ['signing'], 'vault_token_file');
  if (signing['vault_addr'] === undefined && mount === undefined && prefix === undefined) return undefined;
  if (addr === undefined) {
    v.error(['signing', 'vault_addr'], 'required with vault_mount/vault_path_prefix (or set VAULT_ADDR)');
    return undefined;
  }
  if (!/^https?:\/\/[^/]+/.test(addr)) v.error(['signing', 'vault_addr'], `expected a URL such as "https://vault.example.com:8200", got "${addr}"`);
  if (tokenFile === undefined && env['VAULT_TOKEN'] === undefined) v.error(['signing', 'vault_token_file'], 'a Vault token is needed: set VAULT_TOKEN or vault_token_file');
  return { addr: addr.replace(/\/+$/, ''), mount: mount ?? 'secret', prefix: prefix ?? 'dkim/', tokenFile, token: env['VAULT_TOKEN'] };
}
