/**
 * A private Postfix instance for tests: its own config, queue and data
 * directories under a temp dir, every listener on 127.0.0.1, delivery to mbox
 * files by the `virtual` agent, nothing ever leaving the machine
 * (`default_transport = error:`). The dkim-proxy wiring comes from the
 * README's tested blocks, with the ports and paths changed.
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './fixtures.js';

const run = promisify(execFile);

/** The fenced block that follows `<!-- tested: NAME -->` in the README. */
export function readmeBlock(name: string): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const marker = `<!-- tested: ${name} -->`;
  const at = readme.indexOf(marker);
  if (at === -1) throw new Error(`README has no block marked ${marker}`);
  const m = /```[^\n]*\n([\s\S]*?)```/.exec(readme.slice(at + marker.length));
  if (!m) throw new Error(`README: no fenced block after ${marker}`);
  return m[1]!;
}

/** Replaces every `from` (exact text) by `to`. */
export function substitute(text: string, replacements: ReadonlyMap<string | RegExp, string>): string {
  let out = text;
  for (const [from, to] of replacements) {
    const next = typeof from === 'string' ? out.split(from).join(to) : out.replace(from, to);
    if (next === out) throw new Error(`substitute: ${String(from)} not found`);
    out = next;
  }
  return out;
}

/** Postfix needs root to run a private instance (`postfix -c`); the suite says so instead of failing. */
export function postfixUnavailable(): string | undefined {
  if (!existsSync('/usr/sbin/postfix')) return 'Postfix is not installed (.ci/run installs it)';
  if (userInfo().uid !== 0) return 'a private Postfix instance needs root';
  return undefined;
}

export interface Postfix {
  readonly dir: string;
  readonly configDir: string;
  readonly maillog: () => string;
  /** The mbox file of one mailbox ('' until something is delivered). */
  mailbox(user: string): string;
  postqueue(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

const BASE_MASTER_CF = `# The internal services a private instance needs (no chroot, no outside smtp).
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

/**
 * Starts Postfix with `masterCf` and `mainCf` (the README's blocks, already
 * given test ports) on top of a base that delivers the listed mailboxes of
 * the listed domains to files.
 */
export async function startPostfix(opts: { masterCf: string; mainCf: string; domains: string[]; mailboxes: string[] }): Promise<Postfix> {
  // Before the directory exists: a machine without Postfix is left no temp directory.
  const postfixUser = await run('id', ['-u', 'postfix']).catch((err: unknown) => {
    throw new Error('no postfix user: is Postfix installed? (Debian: apt-get install postfix)', { cause: err });
  });
  const dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-postfix-'));
  chmodSync(dir, 0o755); // the virtual agent writes as nobody
  const configDir = join(dir, 'etc');
  const mailDir = join(dir, 'mail');
  const dataDir = join(dir, 'data');
  mkdirSync(configDir);
  mkdirSync(mailDir, { mode: 0o777 });
  chmodSync(mailDir, 0o777);
  mkdirSync(dataDir);
  mkdirSync(join(dir, 'queue'));
  chownSync(dataDir, Number(postfixUser.stdout.trim()), 0);
  writeFileSync(join(configDir, 'vmailbox'), opts.mailboxes.map((m) => `${m} ${m.replace(/[@.]/g, '_')}`).join('\n') + '\n');
  writeFileSync(
    join(configDir, 'main.cf'),
    `# A private test instance: loopback only, nothing leaves this machine.
compatibility_level = 3.6
queue_directory = ${join(dir, 'queue')}
data_directory = ${dataDir}
maillog_file = ${join(dir, 'maillog')}
maillog_file_prefixes = ${dir}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.example.com
mydestination =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
default_transport = error:tests deliver nothing outside
relay_transport = error:tests deliver nothing outside
virtual_mailbox_domains = ${opts.domains.join(' ')}
virtual_mailbox_maps = texthash:${join(configDir, 'vmailbox')}
virtual_mailbox_base = ${mailDir}
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
minimal_backoff_time = 300s
maximal_backoff_time = 600s

# From the README:
${opts.mainCf}`,
  );
  writeFileSync(join(configDir, 'master.cf'), `${BASE_MASTER_CF}\n# From the README:\n${opts.masterCf}`);
  const maillog = (): string => {
    try {
      return readFileSync(join(dir, 'maillog'), 'latin1');
    } catch {
      return '';
    }
  };
  try {
    await run('postfix', ['-c', configDir, 'start'], { timeout: 30_000 });
  } catch (err) {
    // Postfix says why in its log, not on stderr.
    await run('postfix', ['-c', configDir, 'stop'], { timeout: 30_000 }).catch(() => undefined);
    const log = maillog();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`postfix did not start:\n${log}`, { cause: err });
  }
  return {
    dir,
    configDir,
    maillog,
    mailbox(user) {
      try {
        return readFileSync(join(mailDir, user.replace(/[@.]/g, '_')), 'latin1');
      } catch {
        return '';
      }
    },
    async postqueue(...args) {
      return (await run('postqueue', ['-c', configDir, ...args], { timeout: 30_000 })).stdout;
    },
    async stop() {
      await run('postfix', ['-c', configDir, 'stop'], { timeout: 30_000 }).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One message from an mbox file, by a unique Subject, as delivered (mbox "From " line removed). */
export function mboxMessage(mbox: string, subject: string): Buffer | undefined {
  const messages = mbox.split(/^From \S+ {1,2}\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n/m).filter(Boolean);
  const found = messages.find((m) => m.includes(`\nSubject: ${subject}\n`));
  return found === undefined ? undefined : Buffer.from(found.replace(/\n$/, '').replace(/\r?\n/g, '\r\n'), 'latin1');
}
