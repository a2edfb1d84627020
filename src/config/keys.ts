/**
 * The key phase of loading: every signer's private key read (from a file or
 * Vault), parsed, matched to its algorithm, and handed to the engine to
 * prepare once. Only for a config whose tables are already sound.
 */
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parsePrivateKey, PreparedSigner, SignRequestError, type SignRequest, type SigningKey } from '../dkim/index.js';
import { algorithmParts } from '../dkim/signature.js';
import type { PendingSigner } from './signing-tables.js';
import type { Validator } from './validate.js';
import { vaultKeyReader, type KeyRead, type KeyRef, type VaultSettings } from './vault.js';

export interface LoadedKey {
  readonly key: SigningKey;
  /** A file path or a vault path, for messages. */
  readonly source: string;
  /** When the key was made, ms since the epoch (the file's mtime, Vault's created_time), if known. */
  readonly createdAt: number | undefined;
  readonly prepared: PreparedSigner;
}

export function expandKeyPath(template: string, domain: string, selector: string): string {
  return template.replace(/%\{d\}/g, domain).replace(/%\{s\}/g, selector);
}

/**
 * Key material a process already read, handed to another (a supervisor to its
 * workers, over their IPC channel) so that it is read once, not once per
 * process: by `keyId`, the PEM and where it came from.
 */
export type KeyMaterial = ReadonlyMap<string, { readonly pem: string; readonly source: string; readonly createdAt?: number | undefined }>;

export function keyId(ref: KeyRef): string {
  return `${ref.domain}\u0000${ref.selector}\u0000${ref.keyFile}`;
}

/** The keys of a loaded config as KeyMaterial (PKCS#8 PEM, from the parsed keys). */
export function keyMaterialOf(
  signers: Iterable<{ readonly domain: string; readonly selector: string; readonly keyFile: string; readonly keySource: string; readonly key: SigningKey; readonly keyCreatedAt?: number | undefined }>,
): KeyMaterial {
  const out = new Map<string, { pem: string; source: string; createdAt?: number | undefined }>();
  for (const s of signers) {
    const id = keyId({ domain: s.domain, selector: s.selector, keyFile: expandKeyPath(s.keyFile, s.domain, s.selector) });
    if (!out.has(id)) out.set(id, { pem: s.key.key.export({ format: 'pem', type: 'pkcs8' }).toString(), source: s.keySource, createdAt: s.keyCreatedAt });
  }
  return out;
}

function materialReader(material: KeyMaterial) {
  return async (ref: KeyRef): Promise<KeyRead> => {
    const m = material.get(keyId(ref));
    return m ? { ok: true, pem: Buffer.from(m.pem), source: m.source, createdAt: m.createdAt } : { ok: false, message: `no key for ${ref.domain}/${ref.selector} came with the configuration` };
  };
}

/**
 * Loads and prepares every pending signer's key; problems go to `v`, each
 * named by the signer's key. Keys come from `material` when given, else from
 * Vault or the files.
 */
export async function loadSignerKeys(v: Validator, pending: readonly PendingSigner[], vault: VaultSettings | undefined, cwd: string, material?: KeyMaterial): Promise<Map<PendingSigner, LoadedKey>> {
  const readKey = material ? materialReader(material) : vault ? vaultKeyReader(vault) : fileKeyReader(cwd, (path, message) => v.warn(path, message));
  const byId = new Map<string, { key: SigningKey; source: string; createdAt: number | undefined }>();
  for (const p of pending) {
    const id = expandKeyPath(p.settings.keyFile, p.domain, p.settings.selector);
    if (byId.has(id)) continue;
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
    byId.set(id, { key: parsed.key, source: got.source, createdAt: got.createdAt });
  }
  const loaded = new Map<PendingSigner, LoadedKey>();
  for (const p of pending) {
    const k = byId.get(expandKeyPath(p.settings.keyFile, p.domain, p.settings.selector));
    if (!k) continue;
    const keyType = algorithmParts(p.settings.algorithm).keyType;
    if (keyType !== k.key.keyType) {
      v.error([...p.path, 'algorithm'], `${p.settings.algorithm} needs an ${keyType} key, but ${k.source} holds an ${k.key.keyType} key`);
      continue;
    }
    // The engine's own checks, once: a signer that passes them is never checked again per message.
    try {
      loaded.set(p, { ...k, prepared: PreparedSigner.prepare(signRequestOf(p, k.key)) });
    } catch (err) {
      if (!(err instanceof SignRequestError)) throw err;
      v.error(p.path, err.message);
    }
  }
  return loaded;
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

function fileKeyReader(cwd: string, warn: (path: readonly string[], message: string) => void) {
  return async ({ keyFile }: KeyRef, path: readonly string[]): Promise<KeyRead> => {
    const full = resolve(cwd, keyFile);
    try {
      const pem = await readFile(full);
      const { mode, mtimeMs } = await stat(full);
      if (mode & 0o077) warn(path, `${full} is readable by group or others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`);
      return { ok: true, pem, source: full, createdAt: mtimeMs };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const hint = code === 'ENOENT' ? ' (make one with: dkim-proxy keygen)' : '';
      return { ok: false, message: `cannot read key ${full}: ${code ?? String(err)}${hint}` };
    }
  };
}
