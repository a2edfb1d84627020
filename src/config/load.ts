/**
 * Loading the TOML file, in phases: read and parse; the signing tables
 * (signing-tables.ts); the listeners and DNS (listeners.ts); the rest of the
 * top level; then, for a config that is sound so far, the files: the
 * listeners' spool and TLS files, and every private key (keys.ts). Every
 * problem is reported at once, each with the file, line, key and what was
 * expected; the result is frozen.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import TOML from '@iarna/toml';
import type { SigningAlgorithm } from '../dkim/index.js';
import { parseUsers, type AuthUser } from '../auth/users.js';
import { arcConfig, readArc } from './arc.js';
import { expandKeyPath, loadSignerKeys, type KeyMaterial, type LoadedKey } from './keys.js';
import { checkListenerFiles, readDns, readHostPort, readInListener, readOutListener } from './listeners.js';
import { Locator } from './locate.js';
import { readSigningTables, type PendingSigner, type SigningTables } from './signing-tables.js';
import type { DomainBlock, ProxyConfig, SignatureBlock, Signer, SigningConfig } from './types.js';
import { Validator, type ConfigIssue, type Raw } from './validate.js';

export type { ConfigIssue } from './validate.js';
export { expandKeyPath, keyMaterialOf, type KeyMaterial } from './keys.js';
export { parseCidr, parseHostPort } from './listeners.js';
export { DEFAULT_SETTINGS } from './signing-tables.js';

export type LoadResult =
  | { readonly ok: true; readonly config: ProxyConfig; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[]; readonly warnings: readonly ConfigIssue[] };

export interface LoadOptions {
  /** Relative key paths are resolved against this directory (default: the process's). */
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The file's text as another process read it: the config is then exactly that process's. */
  readonly text?: string;
  /** Keys another process read: none is read from files or Vault here. */
  readonly keys?: KeyMaterial;
  /** The time (ms since the epoch) key ages are measured at; default now. */
  readonly now?: number;
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

const TOP_KEYS = ['out', 'in', 'arc', 'dns', 'signing', 'domain', 'signature', 'log', 'metrics', 'workers'];

type Parsed = { readonly ok: true; readonly raw: Raw; readonly text: string } | { readonly ok: false; readonly issue: ConfigIssue };

async function parseFile(file: string, given: string | undefined): Promise<Parsed> {
  let text: string;
  try {
    text = given ?? (await readFile(file, 'utf8'));
  } catch (err) {
    return { ok: false, issue: { key: '', line: undefined, message: `cannot read the file: ${(err as NodeJS.ErrnoException).code ?? String(err)}` } };
  }
  try {
    return { ok: true, raw: TOML.parse(text) as Raw, text };
  } catch (err) {
    const e = err as { line?: number; col?: number; message: string };
    return { ok: false, issue: { key: '', line: e.line === undefined ? undefined : e.line + 1, message: `TOML syntax: ${e.message.split('\n')[0]}` } };
  }
}

/** Every table read and checked, no file touched beyond the config itself. */
function readTables(v: Validator, raw: Raw, options: LoadOptions) {
  v.known(raw, [], TOP_KEYS);
  const tables = readSigningTables(v, raw, options.env ?? process.env);
  const out = readOutListener(v, raw);
  const inListener = readInListener(v, raw);
  const arc = readArc(v, raw, out, inListener);
  const dns = readDns(v, raw);
  const logRaw = v.table(raw, [], 'log') ?? {};
  v.known(logRaw, ['log'], ['level', 'format']);
  const metricsRaw = v.table(raw, [], 'metrics') ?? {};
  v.known(metricsRaw, ['metrics'], ['listen']);
  const metricsListen = readHostPort(v, metricsRaw, ['metrics'], 'listen', true);
  if (metricsListen && !/^(127\.|::1$|localhost$)/.test(metricsListen.host)) v.warn(['metrics', 'listen'], `serves metrics and health on ${metricsListen.host}, beyond this host: keep it behind a firewall`);
  const workers = v.integer(raw, [], 'workers', 1, 256) ?? availableParallelism();
  for (const [name, l] of [['out', out], ['in', inListener]] as const) {
    if (l && l.allowClients.some((c) => c.endsWith('/0'))) v.warn([name, 'allow_clients'], 'allows every address: an open signing proxy signs spam for anyone');
  }
  const log = Object.freeze({
    level: v.oneOf(logRaw, ['log'], 'level', ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const) ?? 'info',
    format: v.oneOf(logRaw, ['log'], 'format', ['auto', 'json', 'pretty'] as const) ?? 'auto',
  });
  return { tables, out, in: inListener, arc, dns, log, metrics: Object.freeze({ listen: metricsListen }), workers };
}

export async function loadConfig(file: string, options: LoadOptions = {}): Promise<LoadResult> {
  const parsed = await parseFile(file, options.text);
  if (!parsed.ok) return { ok: false, issues: [parsed.issue], warnings: [] };
  const v = new Validator(new Locator(parsed.text));
  const t = readTables(v, parsed.raw, options);
  const failed = (): LoadResult => ({ ok: false, issues: v.issues, warnings: v.warnings });
  if (v.issues.length > 0) return failed();

  // Files last: only for a config that is otherwise sound, all errors together.
  const cwd = options.cwd ?? process.cwd();
  for (const [name, l] of [['out', t.out], ['in', t.in]] as const) if (l) await checkListenerFiles(v, name, l, cwd);
  const out = t.out && t.out.authUsersFile !== undefined ? Object.freeze({ ...t.out, authUsers: await readUsersFile(v, resolve(cwd, t.out.authUsersFile)) }) : t.out;
  const keys = await loadSignerKeys(v, [...t.tables.pending, ...(t.arc ? [t.arc.pending] : [])], t.tables.vault, cwd, options.keys);
  const arc = t.arc && arcConfig(v, t.arc, keys.get(t.arc.pending));
  if (v.issues.length > 0) return failed();
  warnOldKeys(v, t.tables, keys, options.now ?? Date.now());

  const config: ProxyConfig = Object.freeze({
    file: resolve(file),
    text: parsed.text,
    out,
    in: t.in,
    arc,
    dns: t.dns,
    signing: signingConfig(t.tables, keys),
    log: t.log,
    metrics: t.metrics,
    workers: t.workers,
  });
  return { ok: true, config, warnings: v.warnings };
}

/** The keys a config names, validated but without reading them (to make them for a new config). */
export async function keyRefs(file: string, options: LoadOptions = {}): Promise<KeyRefsResult> {
  const parsed = await parseFile(file, options.text);
  if (!parsed.ok) return { ok: false, issues: [parsed.issue] };
  const v = new Validator(new Locator(parsed.text));
  const { tables, arc } = readTables(v, parsed.raw, options);
  if (v.issues.length > 0) return { ok: false, issues: v.issues };
  const seen = new Set<string>();
  const refs: NeededKey[] = [];
  for (const p of [...tables.pending, ...(arc ? [arc.pending] : [])]) {
    const keyFile = expandKeyPath(p.settings.keyFile, p.domain, p.settings.selector);
    if (seen.has(keyFile)) continue;
    seen.add(keyFile);
    refs.push({ domain: p.domain, selector: p.settings.selector, algorithm: p.settings.algorithm, keyFile });
  }
  return { ok: true, keys: refs };
}

/** `[out] auth_users_file`: problems named by the key and the file's line. */
async function readUsersFile(v: Validator, file: string): Promise<ReadonlyMap<string, AuthUser> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    v.error(['out', 'auth_users_file'], `cannot read ${file}: ${code}${code === 'ENOENT' ? ' (add a user with: dkim-proxy passwd USER --domains DOMAIN --config FILE)' : ''}`);
    return undefined;
  }
  const r = parseUsers(text);
  if (!r.ok) {
    v.error(['out', 'auth_users_file'], `${file}:${r.line}: ${r.message}`);
    return undefined;
  }
  return r.users;
}

/** `[signing] max_key_age`: each key older than it, named where its selector is configured (M3AAWG: rotate at least every six months). */
function warnOldKeys(v: Validator, tables: SigningTables, keys: ReadonlyMap<PendingSigner, LoadedKey>, now: number): void {
  if (tables.maxKeyAge === undefined) return;
  for (const [p, k] of keys) {
    if (k.createdAt === undefined) continue;
    const days = Math.floor((now - k.createdAt) / 86_400_000);
    if (now - k.createdAt > tables.maxKeyAge * 1000) {
      v.warn([...p.path, 'selector'], `the key for ${p.settings.selector}._domainkey.${p.domain} (${k.source}) is ${days} days old, over max_key_age (${Math.round(tables.maxKeyAge / 86_400)} days): rotate it (dkim-proxy rotate new)`);
    }
  }
}

function signingConfig(tables: SigningTables, keys: ReadonlyMap<PendingSigner, LoadedKey>): SigningConfig {
  const signer = (p: PendingSigner): Signer => {
    const k = keys.get(p);
    if (!k) throw new Error(`unreachable: ${p.path.join('.')} has no loaded key`);
    return Object.freeze({ ...p.settings, domain: p.domain, keySource: k.source, key: k.key, keyCreatedAt: k.createdAt, prepared: k.prepared });
  };
  const both = (pendings: readonly PendingSigner[]): { signer: Signer; candidates: readonly Signer[] } => {
    const candidates = Object.freeze(pendings.map(signer));
    return { signer: candidates[0]!, candidates };
  };
  return Object.freeze({
    domains: new Map<string, DomainBlock>(
      [...tables.domainBlocks].map(([d, b]) => [d, Object.freeze({ name: d, subdomains: b.subdomains, policy: b.policy, additionalSignatures: Object.freeze([...b.additional]), ...both(b.pendings) })]),
    ),
    signatures: new Map<string, SignatureBlock>([...tables.signatureBlocks].map(([n, b]) => [n, Object.freeze({ name: n, policy: b.policy, ...both(b.pendings) })])),
    defaultAdditional: Object.freeze([...tables.defaultAdditional]),
    singleSignature: tables.singleSignature,
    unsigned: tables.unsigned,
    maxKeyAge: tables.maxKeyAge,
    retireAfter: tables.retireAfter,
    vault: tables.vault,
    match: tables.match,
    selfCheck: tables.selfCheck,
  });
}
