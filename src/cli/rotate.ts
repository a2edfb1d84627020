/**
 * `dkim-proxy rotate`: key rotation as a routine. `new` makes the next key
 * and prints its record; the proxy switches by itself once the record is
 * served (see policy/signing.ts); `status` says, per selector, what is due
 * and when; `retire` puts a replaced key away.
 */
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { expandKeyPath } from '../config/load.js';
import { vaultToken } from '../config/vault.js';
import type { ProxyConfig, Signer } from '../config/types.js';
import { formatKeyRecord, generateSigningKey, splitTxt, type KeyKind } from '../dkim/index.js';
import { isSelector } from '../dkim/signature.js';
import { createKeyLookup } from '../dns/resolver.js';
import { checkPublished, type Published } from '../policy/published.js';
import { DEFAULT_CONFIG, loadOrFail } from './config.js';
import { CliError, EXIT, usageError } from './output.js';
import { paint } from './style.js';
import { table } from './table.js';

export const ROTATE_HELP = `Usage: dkim-proxy rotate new --config FILE --domain D [--algorithm A] [--selector NAME] [--zone]
       dkim-proxy rotate status --config FILE [--json] [--now DATE] [--dns-server HOST:PORT]
       dkim-proxy rotate retire --config FILE --domain D --selector NAME

Key rotation without a gap. List the selectors of a domain newest first,
  selectors = ["s202612", "s202606"]
and the proxy signs with the first one whose record is published and matches
its key; a new one takes over by itself once DNS serves it.

  new     makes the next key where the block's key_file template puts it
          (mode 0600; a date-based selector such as s202612 unless --selector),
          prints the TXT record to publish, and the selectors line to use.
          With Vault keys it writes a new secret where the token allows,
          else says what to write.
  status  per domain and selector: published, matches its key, signing now,
          key age, and the next action with its date: publish, wait (for the
          cache TTL), retire (after [signing] retire_after, default 7 days),
          revoke (publish the empty p= record), remove (take it out of
          selectors, then rotate retire), rotate (older than max_key_age).
          Exit 0 when nothing is due, 1 when an action is due (for cron and
          monitoring), 75 when DNS could not be asked.
  retire  moves a replaced selector's key file to retired/ beside it (never
          deleted); take the selector out of the config first.

Options:
  -c, --config FILE          the configuration (default: ${DEFAULT_CONFIG})
  -d, --domain D             the signing domain
  -a, --algorithm A          which of the domain's rotations: rsa-sha256 or ed25519-sha256
  -s, --selector NAME        the new selector (default: s + year and month)
      --zone                 print a BIND zone-file line
      --json                 status as JSON, for scripts
      --now DATE             judge dates as of DATE (ISO 8601 or seconds since the epoch)
      --dns-server HOST:PORT ask this server instead of [dns] servers (repeatable)
`;

type Next = 'none' | 'publish' | 'wait' | 'retire' | 'revoke' | 'remove' | 'rotate';

export interface SelectorStatus {
  readonly block: string;
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: string;
  readonly published: boolean;
  readonly matches: boolean;
  readonly signing: boolean;
  readonly age_days: number | null;
  /** When this selector's successor took over (ISO), for a replaced selector. */
  readonly successor_since: string | null;
  readonly next: Next;
  /** When `next` is due (ISO); now or earlier: due. */
  readonly next_date: string;
  readonly due: boolean;
  readonly detail: string;
}

interface Rotation {
  readonly name: string;
  readonly candidates: readonly Signer[];
}

function rotations(config: ProxyConfig): Rotation[] {
  return [
    ...[...config.signing.domains.values()].map((b) => ({ name: `domain."${b.name}"`, candidates: b.candidates })),
    ...[...config.signing.signatures.values()].map((s) => ({ name: `signature."${s.name}"`, candidates: s.candidates })),
  ];
}

function parseNow(text: string | undefined): number {
  if (text === undefined) return Date.now();
  const n = /^[0-9]+$/.test(text) ? Number(text) * 1000 : Date.parse(text);
  if (!Number.isFinite(n)) throw usageError(`--now: expected an ISO 8601 date or seconds since the epoch, got "${text}"`);
  return n;
}

const DAY = 86_400_000;
const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * When a selector began to sign: recorded beside its key file the first time
 * `status` sees it published and matching (a Vault key has no file: its
 * creation time stands in).
 */
async function signingSince(signer: Signer, now: number): Promise<number> {
  if (signer.keySource.startsWith('vault:')) return signer.keyCreatedAt ?? now;
  const marker = `${signer.keySource}.signing-since`;
  try {
    const t = Date.parse((await readFile(marker, 'utf8')).trim());
    if (Number.isFinite(t)) return t;
  } catch {
    // Not yet recorded.
  }
  await writeFile(marker, `${iso(now)}\n`, { mode: 0o600 }).catch(() => undefined);
  return now;
}

export async function rotationStatus(config: ProxyConfig, lookup: ReturnType<typeof createKeyLookup>, now: number): Promise<{ rows: SelectorStatus[]; dnsErrors: number }> {
  const rows: SelectorStatus[] = [];
  let dnsErrors = 0;
  // The proxies may have cached "no record" for as long as the negative TTL, and a record for cache_ttl.
  const ttl = Math.max(config.dns.negativeTtlSeconds, 0) * 1000;
  for (const r of rotations(config)) {
    const published: Published[] = [];
    for (const c of r.candidates) published.push(await checkPublished(c, lookup));
    dnsErrors += published.filter((p) => p.state === 'temperror').length;
    const signingIndex = published.findIndex((p) => p.state === 'match');
    const since = signingIndex >= 0 ? await signingSince(r.candidates[signingIndex]!, now) : undefined;
    r.candidates.forEach((c, k) => {
      const p = published[k]!;
      const age = c.keyCreatedAt === undefined ? null : Math.floor((now - c.keyCreatedAt) / DAY);
      const base = { block: r.name, domain: c.domain, selector: c.selector, algorithm: c.algorithm, published: p.state === 'match' || p.state === 'mismatch', matches: p.state === 'match', signing: k === signingIndex, age_days: age };
      const at = (next: Next, when: number, detail: string, successor: number | null = null): SelectorStatus => ({
        ...base,
        successor_since: successor === null ? null : iso(successor),
        next,
        next_date: iso(when),
        due: next !== 'none' && next !== 'wait' && when <= now,
        detail,
      });
      if (p.state === 'temperror') {
        rows.push(at('none', now, `DNS error: ${p.detail}`));
      } else if (signingIndex === -1 || k < signingIndex) {
        // Not yet taking over: its record is what is missing.
        const detail = 'detail' in p ? p.detail : '';
        rows.push(at('publish', now, p.state === 'mismatch' ? `${detail}: publish the record for this key` : p.state === 'absent' ? `publish its record at ${p.name}` : `${p.state} at ${p.name}: ${detail}`));
      } else if (k === signingIndex) {
        const old = config.signing.maxKeyAge !== undefined && c.keyCreatedAt !== undefined && now - c.keyCreatedAt > config.signing.maxKeyAge * 1000;
        rows.push(old ? at('rotate', c.keyCreatedAt! + config.signing.maxKeyAge! * 1000, `older than max_key_age: dkim-proxy rotate new --domain ${c.domain}`) : at('none', now, 'signing'));
      } else {
        const s = since!;
        if (now < s + ttl) rows.push(at('wait', s + ttl, 'proxies may still sign with it until their cached answers expire', s));
        else if (now < s + config.signing.retireAfter * 1000) rows.push(at('retire', s + config.signing.retireAfter * 1000, 'keep it published while mail signed with it may still be in queues', s));
        else if (p.state === 'match' || p.state === 'mismatch') rows.push(at('revoke', s + config.signing.retireAfter * 1000, `publish an empty key at ${p.name}: "v=DKIM1; p=" (RFC 6376 §3.6.1)`, s));
        else rows.push(at('remove', s + config.signing.retireAfter * 1000, `take ${c.selector} out of selectors, then: dkim-proxy rotate retire --domain ${c.domain} --selector ${c.selector}`, s));
      }
    });
  }
  return { rows, dnsErrors };
}

export async function rotateCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(ROTATE_HELP);
    return sub === undefined ? EXIT.usage : EXIT.ok;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      config: { type: 'string', short: 'c', default: DEFAULT_CONFIG },
      domain: { type: 'string', short: 'd' },
      algorithm: { type: 'string', short: 'a' },
      selector: { type: 'string', short: 's' },
      zone: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      now: { type: 'string' },
      'dns-server': { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(ROTATE_HELP);
    return EXIT.ok;
  }
  const now = parseNow(values.now);
  switch (sub) {
    case 'new':
      return rotateNew(await loadOrFail(values.config), values.domain, values.algorithm, values.selector, values.zone, now);
    case 'status': {
      const config = await loadOrFail(values.config);
      const lookup = createKeyLookup({ servers: values['dns-server'] ?? config.dns.servers, timeoutMs: config.dns.timeoutMs });
      const { rows, dnsErrors } = await rotationStatus(config, lookup, now);
      if (values.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      } else {
        const p = paint();
        const yes = (b: boolean): string => (b ? 'yes' : 'no');
        const lines = [['block', 'selector', 'published', 'matches', 'signing', 'age', 'next', 'when', ''].map(p.bold)];
        for (const r of rows) {
          lines.push([r.block, r.selector, yes(r.published), yes(r.matches), r.signing ? p.good('yes') : 'no', r.age_days === null ? '-' : `${r.age_days} d`, r.due ? p.warn(r.next) : r.next, r.next === 'none' ? '' : r.next_date.slice(0, 10), r.detail]);
        }
        process.stdout.write(table(lines));
      }
      if (rows.some((r) => r.due)) return EXIT.notVerified;
      return dnsErrors > 0 ? EXIT.tempFail : EXIT.ok;
    }
    case 'retire':
      return rotateRetire(await loadOrFail(values.config), values.domain, values.selector);
    default:
      throw usageError(`rotate: unknown subcommand "${sub}" (new, status or retire)`);
  }
}

/** The rotation `new` and `retire` act on: the domain's block, or its signature block of the given algorithm. */
function rotationFor(config: ProxyConfig, domain: string | undefined, algorithm: string | undefined): Rotation {
  if (!domain) throw usageError('rotate needs --domain');
  const d = domain.toLowerCase().replace(/\.$/, '');
  const all = rotations(config).filter((r) => r.candidates[0]!.domain === d && (algorithm === undefined || r.candidates[0]!.algorithm === algorithm));
  if (all.length === 0) throw usageError(`no [domain] or [signature] block signs as ${d}${algorithm ? ` with ${algorithm}` : ''}`);
  return all.find((r) => r.name.startsWith('domain.')) ?? all[0]!;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function rotateNew(config: ProxyConfig, domain: string | undefined, algorithm: string | undefined, wanted: string | undefined, zone: boolean, now: number): Promise<number> {
  const r = rotationFor(config, domain, algorithm);
  const current = r.candidates[0]!;
  const d = current.domain;
  const month = iso(now).slice(0, 7).replace('-', '');
  let selector = wanted ?? `s${month}`;
  if (!isSelector(selector)) throw usageError(`--selector: "${selector}" is not a selector (DNS labels: a-z 0-9 - _)`);
  const taken = async (s: string): Promise<boolean> => r.candidates.some((c) => c.selector === s) || (!current.keySource.startsWith('vault:') && (await exists(resolve(expandKeyPath(current.keyFile, d, s)))));
  if (wanted === undefined) {
    // A second rotation in one month: s202612b, s202612c...
    for (let k = 0; (await taken(selector)) && k < 25; k++) selector = `s${month}${String.fromCharCode(98 + k)}`;
  }
  if (await taken(selector)) throw new CliError(`${selector} is already a selector of ${r.name} or has a key file: choose another with --selector`, EXIT.cantCreate);
  const kind: KeyKind = current.key.keyType === 'ed25519' ? 'ed25519' : current.key.bits !== undefined && current.key.bits >= 4096 ? 'rsa-4096' : 'rsa-2048';
  const { pem, key } = generateSigningKey(kind);
  const p = paint(process.stderr);
  if (current.keySource.startsWith('vault:')) {
    await writeVault(config, d, selector, pem, current.keySource);
  } else {
    const file = resolve(expandKeyPath(current.keyFile, d, selector));
    try {
      await mkdir(dirname(file), { recursive: true, mode: 0o700 });
      await writeFile(file, pem, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      throw new CliError(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, EXIT.cantCreate);
    }
    process.stderr.write(`${p.good('wrote')} ${file} (${kind}, mode 0600)\n`);
  }
  const name = `${selector}._domainkey.${d}.`;
  const strings = splitTxt(formatKeyRecord(key)).map((s) => `"${s}"`).join(' ');
  process.stderr.write(`publish this TXT record at ${p.bold(name)}\n`);
  process.stdout.write(zone ? `${name} IN TXT ( ${strings} )\n` : `${strings}\n`);
  const list = [selector, ...r.candidates.map((c) => c.selector)];
  process.stderr.write(
    `then list it first in [${r.name}] (the proxy switches once DNS serves the record; nothing is edited for you):\n  selectors = [${list.map((s) => `"${s}"`).join(', ')}]\n`,
  );
  return EXIT.ok;
}

/** KV v2: a new secret version where the token may write; else what the operator should write. */
async function writeVault(config: ProxyConfig, domain: string, selector: string, pem: string, example: string): Promise<void> {
  const vault = config.signing.vault;
  if (!vault) throw new Error(`unreachable: ${example} is a Vault key but there are no Vault settings`);
  const path = `${vault.prefix}${domain}/${selector}`;
  try {
    const token = await vaultToken(vault);
    const res = await fetch(`${vault.addr}/v1/${vault.mount}/data/${path}`, {
      method: 'POST',
      headers: { 'X-Vault-Token': token, 'content-type': 'application/json' },
      body: JSON.stringify({ data: { key: pem } }),
      signal: AbortSignal.timeout(5000),
    });
    if (res.ok) {
      process.stderr.write(`wrote the key to vault:${vault.mount}/${path} (beside ${example})\n`);
      return;
    }
    process.stderr.write(`Vault refused the write (${res.status}): the token may read keys but not write them.\n`);
  } catch (err) {
    process.stderr.write(`cannot write to Vault at ${vault.addr}: ${err instanceof Error ? err.message : String(err)}\n`);
  }
  const file = resolve(`${selector}.${domain}.key`);
  await writeFile(file, pem, { mode: 0o600, flag: 'wx' });
  process.stderr.write(`the key is in ${file} (mode 0600); store it with\n  vault kv put -mount=${vault.mount} ${path} key=@${file}\nthen delete ${file}\n`);
}

async function rotateRetire(config: ProxyConfig, domain: string | undefined, selector: string | undefined): Promise<number> {
  if (!domain || !selector) throw usageError('rotate retire needs --domain and --selector');
  const d = domain.toLowerCase().replace(/\.$/, '');
  const listed = rotations(config).find((r) => r.candidates.some((c) => c.domain === d && c.selector === selector));
  if (listed) throw new CliError(`${selector} is still a selector of [${listed.name}]: take it out of selectors (and reload the proxy) first`, EXIT.usage);
  // The template of the domain's block, now that it no longer lists the selector.
  const r = rotationFor(config, d, undefined);
  const file = resolve(expandKeyPath(r.candidates[0]!.keyFile, d, selector));
  if (!(await exists(file))) throw new CliError(`no key file ${file}`, EXIT.noInput);
  const dir = join(dirname(file), 'retired');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const to = join(dir, basename(file));
  if (await exists(to)) throw new CliError(`${to} exists: not overwriting a retired key`, EXIT.cantCreate);
  await rename(file, to);
  await rename(`${file}.signing-since`, `${to}.signing-since`).catch(() => undefined);
  process.stderr.write(`moved ${file} to ${to} (kept, not deleted)\n`);
  return EXIT.ok;
}
