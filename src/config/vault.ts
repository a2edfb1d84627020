/**
 * Private keys from HashiCorp Vault's KV v2 engine, as KumoMTA offers for
 * fleets: the key for d=example.com, s=s2026 is the `key` field of the secret
 * at `<mount>/data/<prefix>example.com/s2026`.
 */
import { readFile } from 'node:fs/promises';

export interface VaultSettings {
  readonly addr: string;
  readonly mount: string;
  readonly prefix: string;
  readonly tokenFile: string | undefined;
  readonly token: string | undefined;
}

export interface KeyRef {
  readonly domain: string;
  readonly selector: string;
  readonly keyFile: string;
}

/** `createdAt`: when the key was made (ms since the epoch), if the source says. */
export type KeyRead = { ok: true; pem: Buffer; source: string; createdAt?: number | undefined } | { ok: false; message: string };

/** The token from vault_token_file, else the one from the environment (VAULT_TOKEN). */
export function vaultToken(vault: VaultSettings): Promise<string> {
  return vault.tokenFile ? readFile(vault.tokenFile, 'utf8').then((t) => t.trim()) : Promise.resolve(vault.token ?? '');
}

export function vaultKeyReader(vault: VaultSettings, timeoutMs = 5000): (ref: KeyRef) => Promise<KeyRead> {
  let token: Promise<string> | undefined;
  const getToken = (): Promise<string> => (token ??= vaultToken(vault));
  return async ({ domain, selector }) => {
    const secret = `${vault.prefix}${domain}/${selector}`;
    const url = `${vault.addr}/v1/${vault.mount}/data/${secret}`;
    const source = `vault:${vault.mount}/${secret}`;
    let t: string;
    try {
      t = await getToken();
    } catch (err) {
      return { ok: false, message: `cannot read the Vault token file ${vault.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
    }
    try {
      const res = await fetch(url, { headers: { 'X-Vault-Token': t }, signal: AbortSignal.timeout(timeoutMs) });
      if (res.status === 404) return { ok: false, message: `${source}: no such secret in Vault` };
      if (res.status === 403) return { ok: false, message: `${source}: Vault refused the token (403)` };
      if (!res.ok) return { ok: false, message: `${source}: Vault answered ${res.status}` };
      const body = (await res.json()) as { data?: { data?: Record<string, unknown>; metadata?: { created_time?: unknown } } };
      const pem = body.data?.data?.['key'];
      if (typeof pem !== 'string') return { ok: false, message: `${source}: the secret has no "key" field holding a PEM key` };
      const created = typeof body.data?.metadata?.created_time === 'string' ? Date.parse(body.data.metadata.created_time) : NaN;
      return { ok: true, pem: Buffer.from(pem), source, ...(Number.isFinite(created) ? { createdAt: created } : {}) };
    } catch (err) {
      const reason = err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      return { ok: false, message: `${source}: cannot reach Vault at ${vault.addr}: ${reason}` };
    }
  };
}
