/**
 * The signing tables: `[signing]` (the defaults), `[signature."name"]` and
 * `[domain."name"]` blocks, and the checks across them. What comes out names
 * each signer still without its key (see keys.ts).
 */
import { domainToASCII } from 'node:url';
import { parseCanonicalization, SIGNING_ALGORITHMS, type SigningAlgorithm } from '../dkim/index.js';
import { DEFAULT_SIGNED_HEADERS } from '../dkim/sign.js';
import { isDomainName, isSameOrSubdomain, isSelector } from '../dkim/signature.js';
import type { AdditionalPolicy, DnsPolicy, SignatureSettings } from './types.js';
import { isTable, type Raw, type Validator } from './validate.js';
import type { VaultSettings } from './vault.js';

const SETTINGS_KEYS = ['selector', 'selectors', 'algorithm', 'canonicalization', 'headers', 'over_sign', 'key_file', 'identity', 'expire', 'body_length', 'copy_headers'];
const SIGNING_KEYS = [...SETTINGS_KEYS, 'policy', 'additional_signatures', 'single_signature', 'unsigned', 'legacy_sha1', 'max_key_age', 'retire_after', 'match', 'self_check', 'vault_addr', 'vault_mount', 'vault_path_prefix', 'vault_token_file'];
const DOMAIN_KEYS = [...SETTINGS_KEYS, 'subdomains', 'policy', 'additional_signatures'];
const SIGNATURE_KEYS = [...SETTINGS_KEYS, 'domain', 'policy'];
const DNS_POLICIES: readonly DnsPolicy[] = ['SignAlways', 'SignOnlyIfInDNS', 'TempFailIfNotInDNS'];
const ADDITIONAL_POLICIES: readonly AdditionalPolicy[] = ['Always', 'OnlyIfMissingDomainBlock'];
const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]+?[?*+]?$/;

export const DEFAULT_SETTINGS: SignatureSettings = {
  selector: 'default',
  selectors: ['default'],
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

/** A signer as the tables give it: where it is configured, its domain and settings; its key comes later. */
export interface PendingSigner {
  readonly path: readonly string[];
  readonly domain: string;
  readonly settings: SignatureSettings;
}

export interface SigningTables {
  readonly pending: readonly PendingSigner[];
  readonly domainBlocks: ReadonlyMap<string, { readonly subdomains: boolean; readonly policy: DnsPolicy; readonly additional: readonly string[]; readonly pendings: readonly PendingSigner[] }>;
  readonly signatureBlocks: ReadonlyMap<string, { readonly policy: AdditionalPolicy; readonly pendings: readonly PendingSigner[] }>;
  readonly defaultAdditional: readonly string[];
  readonly singleSignature: boolean;
  readonly unsigned: 'relay' | 'refuse';
  readonly maxKeyAge: number | undefined;
  readonly retireAfter: number;
  readonly match: 'header_from' | 'envelope_from' | 'sender';
  readonly selfCheck: boolean;
  readonly vault: VaultSettings | undefined;
}

export function readSigningTables(v: Validator, raw: Raw, env: Readonly<Record<string, string | undefined>>): SigningTables {
  const signingRaw = v.table(raw, [], 'signing') ?? {};
  v.known(signingRaw, ['signing'], SIGNING_KEYS);
  const defaults = readSettings(v, signingRaw, ['signing'], DEFAULT_SETTINGS);
  const legacySha1 = v.bool(signingRaw, ['signing'], 'legacy_sha1') ?? false;
  const defaultPolicy = v.oneOf(signingRaw, ['signing'], 'policy', DNS_POLICIES) ?? 'SignAlways';
  const defaultAdditional = v.strings(signingRaw, ['signing'], 'additional_signatures') ?? [];
  const pending: PendingSigner[] = [];

  // [signature."name"] blocks: third-party and double signing.
  const signatureBlocks = new Map<string, { policy: AdditionalPolicy; pendings: PendingSigner[] }>();
  // One signer per selector: each has its own key, found by its own %{s}.
  const perSelector = (path: readonly string[], domain: string, settings: SignatureSettings): PendingSigner[] =>
    settings.selectors.map((selector) => ({ path, domain, settings: Object.freeze({ ...settings, selector }) }));
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
    const ps = perSelector(path, domain, settings);
    pending.push(...ps);
    signatureBlocks.set(name, { policy, pendings: ps });
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
  const domainBlocks = new Map<string, { subdomains: boolean; policy: DnsPolicy; additional: string[]; pendings: PendingSigner[] }>();
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
    const ps = perSelector(path, domain, settings);
    pending.push(...ps);
    domainBlocks.set(domain, {
      subdomains: v.bool(value, path, 'subdomains') ?? false,
      policy: v.oneOf(value, path, 'policy', DNS_POLICIES) ?? defaultPolicy,
      additional,
      pendings: ps,
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
      else v.warn([...p.path, 'algorithm'], 'rsa-sha1 signatures are not accepted by most receivers (RFC 8301)');
    }
    if (s.bodyLength) v.warn([...p.path, 'body_length'], 'l= lets anyone append content below the signed part (RFC 6376 §8.2)');
  }
  for (const [domain, block] of domainBlocks) {
    const first = block.pendings[0]!;
    if (first.settings.algorithm !== 'ed25519-sha256') continue;
    const rsaToo = block.additional.some((n) => signatureBlocks.get(n)?.pendings[0]!.settings.algorithm.startsWith('rsa'));
    if (!rsaToo) v.warn([...first.path, 'algorithm'], `${domain} is signed with ed25519 only; Gmail and Debian 12's Mail::DKIM cannot verify it: add an RSA signature (dual signing)`);
  }


  return {
    pending,
    domainBlocks,
    signatureBlocks,
    defaultAdditional,
    singleSignature: v.bool(signingRaw, ['signing'], 'single_signature') ?? false,
    unsigned: v.oneOf(signingRaw, ['signing'], 'unsigned', ['relay', 'refuse'] as const) ?? 'relay',
    maxKeyAge: v.duration(signingRaw, ['signing'], 'max_key_age'),
    // Long enough for mail queued and signed with the old key to be verified on arrival.
    retireAfter: v.duration(signingRaw, ['signing'], 'retire_after') ?? 7 * 86_400,
    match: v.oneOf(signingRaw, ['signing'], 'match', ['header_from', 'envelope_from', 'sender'] as const) ?? 'header_from',
    // One RSA verification is a small fraction of a signature: on by default (README, Capacity).
    selfCheck: v.bool(signingRaw, ['signing'], 'self_check') ?? true,
    vault: readVault(v, signingRaw, env),
  };
}

function normalizeDomain(name: string): string | null {
  const ascii = domainToASCII(name.toLowerCase().replace(/\.$/, ''));
  return ascii !== '' && isDomainName(ascii) ? ascii : null;
}

function readSettings(v: Validator, raw: Raw, path: readonly string[], base: SignatureSettings): SignatureSettings {
  const selector = v.string(raw, path, 'selector');
  if (selector !== undefined && !isSelector(selector)) v.error([...path, 'selector'], `expected a DNS label (a-z 0-9 - _, up to 63), got "${selector}"`);
  let selectors = selector !== undefined ? [selector] : base.selectors;
  const list = v.strings(raw, path, 'selectors');
  if (list !== undefined) {
    const bad = list.filter((s) => !isSelector(s));
    if (selector !== undefined) v.error([...path, 'selectors'], 'give either selector or selectors (for key rotation), not both');
    else if (list.length === 0) v.error([...path, 'selectors'], 'expected at least one selector, the preferred (newest) first');
    else if (bad.length > 0) v.error([...path, 'selectors'], `expected DNS labels (a-z 0-9 - _, up to 63), got ${bad.map((b) => JSON.stringify(b)).join(', ')}`);
    else if (new Set(list).size !== list.length) v.error([...path, 'selectors'], 'lists a selector twice');
    else selectors = Object.freeze([...list]);
  }
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
    selector: selectors[0]!,
    selectors,
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
