/**
 * SMTP AUTH for `out` (PLAIN and LOGIN, RFC 4954): passwords checked against
 * the scrypt hashes of `auth_users_file`; failures throttled per client
 * address (each failure past the third answers later, the sixth closes the
 * connection) and logged with the user name, never the password.
 */
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { verifyPassword, type AuthUser } from '../auth/users.js';

/** What a session knows of its user once authenticated (smtp-server's session.user). */
export interface SessionUser {
  readonly name: string;
  readonly domains: readonly string[];
}

export function isLoopback(address: string): boolean {
  const a = address.replace(/^::ffff:/i, '');
  return (isIP(a) === 4 && a.startsWith('127.')) || a === '::1';
}

/** A hash of nothing anyone knows: an unknown user costs as much as a wrong password, so names cannot be probed by timing. */
const DECOY = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

const SLOW_AFTER = 3;
const CLOSE_AT = 6;
const STEP_MS = 500;
/** A client's failures are forgotten this long after its last one. */
const FORGET_MS = 15 * 60_000;

export type AuthCheck = { readonly ok: true; readonly user: SessionUser } | { readonly ok: false; readonly code: number; readonly reply: string };

export class Authenticator {
  private readonly users: () => ReadonlyMap<string, AuthUser> | undefined;
  private readonly log: Logger;
  private readonly failures = new Map<string, { count: number; last: number }>();

  constructor(users: () => ReadonlyMap<string, AuthUser> | undefined, log: Logger) {
    this.users = users;
    this.log = log;
  }

  async check(name: string | undefined, password: string, client: string): Promise<AuthCheck> {
    const user = name === undefined ? undefined : this.users()?.get(name);
    const good = await verifyPassword(password, user?.hash ?? DECOY);
    if (good && user) {
      this.failures.delete(client);
      this.log.info({ client, user: user.name }, 'authenticated');
      return { ok: true, user: { name: user.name, domains: user.domains } };
    }
    const now = Date.now();
    // Bounded: a flood of addresses must not grow the table without end.
    if (this.failures.size > 10_000) for (const [k, f] of this.failures) if (now - f.last >= FORGET_MS) this.failures.delete(k);
    const before = this.failures.get(client);
    const count = before && now - before.last < FORGET_MS ? before.count + 1 : 1;
    this.failures.set(client, { count, last: now });
    this.log.warn({ client, user: name ?? null, failures: count }, 'authentication failed');
    if (count > SLOW_AFTER) await new Promise((r) => setTimeout(r, Math.min(count - SLOW_AFTER, 4) * STEP_MS));
    if (count >= CLOSE_AT) return { ok: false, code: 421, reply: `4.7.0 Too many failed logins from ${client}; closing connection` };
    return { ok: false, code: 535, reply: '5.7.8 Authentication credentials invalid' };
  }
}
