/**
 * The users who may submit with SMTP AUTH, and the domains each may sign for
 * (`auth_users_file`). One line per user, as `dkim-proxy passwd` writes it:
 *
 *   alice:scrypt$16384$8$1$<salt>$<key>:a.example,b.example
 *
 * Passwords are kept only as scrypt hashes (node:crypto, RFC 7914), never as
 * text; `#` lines are comments.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

export interface AuthUser {
  readonly name: string;
  /** `scrypt$N$r$p$salt$key`, salt and key base64. */
  readonly hash: string;
  /** Lower-cased; a user may sign for these and their subdomains. */
  readonly domains: readonly string[];
}

export type UsersParse = { readonly ok: true; readonly users: ReadonlyMap<string, AuthUser> } | { readonly ok: false; readonly line: number; readonly message: string };

const NAME = /^[A-Za-z0-9._@+-]{1,128}$/;

export const isUserName = (name: string): boolean => NAME.test(name);
const HASH = /^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9+/=]{8,})\$([A-Za-z0-9+/=]{16,})$/;
/** OWASP's scrypt baseline: N = 2^14 (16 MiB of memory), r = 8, p = 1. */
const COST = { N: 16_384, r: 8, p: 1 } as const;
const KEY_BYTES = 32;

export function parseUsers(text: string): UsersParse {
  const users = new Map<string, AuthUser>();
  const lines = text.split(/\r?\n/);
  for (const [k, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const bad = (message: string): UsersParse => ({ ok: false, line: k + 1, message });
    const [name, hash, domainText, ...rest] = line.split(':');
    if (rest.length > 0 || name === undefined || hash === undefined || domainText === undefined) return bad('expected user:hash:domains (dkim-proxy passwd writes these lines)');
    if (!NAME.test(name)) return bad(`"${name}" is not a user name (letters, digits and . _ @ + -)`);
    if (!HASH.test(hash)) return bad(`the hash of ${name} is not an scrypt hash (passwords are never stored as text: set it with dkim-proxy passwd)`);
    const domains = domainText.split(',').map((d) => d.trim().toLowerCase().replace(/\.$/, '')).filter(Boolean);
    if (domains.length === 0) return bad(`${name} may sign for no domain`);
    if (users.has(name)) return bad(`${name} is listed twice`);
    users.set(name, Object.freeze({ name, hash, domains: Object.freeze(domains) }));
  }
  return { ok: true, users };
}

export function formatUsers(users: Iterable<AuthUser>): string {
  return `# dkim-proxy auth users: user:scrypt-hash:domains (written by dkim-proxy passwd)\n${[...users].map((u) => `${u.name}:${u.hash}:${u.domains.join(',')}\n`).join('')}`;
}

function derive(password: string, salt: Buffer, cost: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, KEY_BYTES, { ...cost, maxmem: 64 * 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, COST);
  return `scrypt$${COST.N}$${COST.r}$${COST.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Constant-time comparison of the derived key; false for a hash that does not parse. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const m = HASH.exec(hash);
  if (!m) return false;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const expected = Buffer.from(m[5]!, 'base64');
  try {
    const key = await derive(password, Buffer.from(m[4]!, 'base64'), { N, r, p });
    return key.length === expected.length && timingSafeEqual(key, expected);
  } catch {
    return false;
  }
}
