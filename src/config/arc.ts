/**
 * `[arc]`: the sealer's domain, selector and key, read like a signer's (the
 * same `key_file` template, Vault and key checks, by the same loader), and
 * the authserv-id whose results it seals. Checked once here; the sealer the
 * engine gets is not checked again per message.
 */
import { PreparedSealer } from '../arc/seal.js';
import { SignRequestError } from '../dkim/index.js';
import { isDomainName, isSelector } from '../dkim/signature.js';
import type { LoadedKey } from './keys.js';
import { DEFAULT_SETTINGS, type PendingSigner } from './signing-tables.js';
import type { ArcConfig, InListenerConfig, OutListenerConfig } from './types.js';
import type { Raw, Validator } from './validate.js';

const ARC_KEYS = ['domain', 'selector', 'key_file', 'algorithm', 'authserv_id', 'headers'];

export interface PendingArc {
  /** For the key loader: a signer's shape, at `[arc]`. */
  readonly pending: PendingSigner;
  readonly authservId: string;
  readonly headers: readonly string[] | undefined;
}

export function readArc(v: Validator, raw: Raw, out: OutListenerConfig | undefined, inListener: InListenerConfig | undefined): PendingArc | undefined {
  const t = v.table(raw, [], 'arc');
  const sealing = [...(out?.arcSeal ? ['out'] : []), ...(inListener?.arcSeal ? ['in'] : [])];
  if (t === undefined) {
    for (const name of sealing) v.error([name, 'arc_seal'], 'seals with the [arc] key: add an [arc] table with domain and selector');
    return undefined;
  }
  const path = ['arc'];
  v.known(t, path, ARC_KEYS);
  const domain = v.string(t, path, 'domain')?.toLowerCase();
  const selector = v.string(t, path, 'selector');
  if (domain === undefined) v.error([...path, 'domain'], 'expected the sealing domain (the ARC-Seal d=)');
  else if (!isDomainName(domain)) v.error([...path, 'domain'], `expected a domain name, got "${domain}"`);
  if (selector === undefined) v.error([...path, 'selector'], 'expected the selector of the sealing key');
  else if (!isSelector(selector)) v.error([...path, 'selector'], `expected a DNS label (a-z 0-9 - _, up to 63), got "${selector}"`);
  const algorithm = v.oneOf(t, path, 'algorithm', ['rsa-sha256', 'ed25519-sha256'] as const) ?? 'rsa-sha256';
  // The signers' template, so that one key layout serves both.
  const signing = raw['signing'];
  const signingKeyFile = typeof signing === 'object' && signing !== null && typeof (signing as Raw)['key_file'] === 'string' ? ((signing as Raw)['key_file'] as string) : DEFAULT_SETTINGS.keyFile;
  const keyFile = v.string(t, path, 'key_file') ?? signingKeyFile;
  const headers = v.strings(t, path, 'headers');
  const authservId = v.string(t, path, 'authserv_id') ?? inListener?.authservId ?? out?.hostname;
  if (authservId === undefined) v.error([...path, 'authserv_id'], 'expected the authserv-id whose Authentication-Results are sealed (there is no [in] to take it from)');
  if (sealing.length === 0) v.warn(path, 'nothing seals with it: set arc_seal = true in [in] or [out] (dkim-proxy seal works without)');
  if (domain === undefined || selector === undefined || authservId === undefined) return undefined;
  return {
    pending: { path, domain, settings: { ...DEFAULT_SETTINGS, selector, keyFile, algorithm } },
    authservId,
    headers: headers === undefined ? undefined : Object.freeze([...headers]),
  };
}

/** The sealer, once its key is loaded; problems go to `v`. */
export function arcConfig(v: Validator, p: PendingArc, key: LoadedKey | undefined): ArcConfig | undefined {
  if (key === undefined) return undefined;
  const { domain, settings } = p.pending;
  try {
    const sealer = PreparedSealer.prepare({
      domain,
      selector: settings.selector,
      key: key.key,
      algorithm: settings.algorithm,
      authservId: p.authservId,
      ...(p.headers ? { headers: p.headers } : {}),
    });
    return Object.freeze({ domain, selector: settings.selector, algorithm: settings.algorithm, keyFile: settings.keyFile, keySource: key.source, key: key.key, keyCreatedAt: key.createdAt, authservId: p.authservId, sealer });
  } catch (err) {
    if (!(err instanceof SignRequestError)) throw err;
    v.error(p.headers ? [...p.pending.path, 'headers'] : p.pending.path, err.message);
    return undefined;
  }
}
