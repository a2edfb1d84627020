import { readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import TOML from '@iarna/toml';
import { formatUsers, hashPassword, isUserName, parseUsers, type AuthUser } from '../auth/users.js';
import { isDomainName } from '../dkim/signature.js';
import { DEFAULT_CONFIG } from './config.js';
import { CliError, EXIT, usageError } from './output.js';

export const PASSWD_HELP = `Usage: dkim-proxy passwd USER --domains D1,D2 [--config FILE]
       dkim-proxy passwd USER --delete [--config FILE]

Adds or updates USER in the file [out] auth_users_file names: an scrypt hash
of the password (never the password itself) and the domains USER may sign
for with sign_condition = "auth_user". The password is read from standard
input when it is not a terminal (one line: scripts, configuration
management), else asked for twice without echo. The file is written with
mode 0600 and replaced in one step; reload the proxy (SIGHUP) to use it.

Options:
  -c, --config FILE     the configuration (default: ${DEFAULT_CONFIG})
      --domains LIST    comma-separated domains (and their subdomains) USER may sign for
      --delete          remove USER
`;

async function usersFileOf(config: string): Promise<string> {
  let raw: { out?: { auth_users_file?: unknown } };
  try {
    raw = TOML.parse(await readFile(config, 'utf8')) as typeof raw;
  } catch (err) {
    throw new CliError(`${config}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`, EXIT.config);
  }
  const file = raw.out?.auth_users_file;
  if (typeof file !== 'string') throw new CliError(`${config}: [out] has no auth_users_file to write users to`, EXIT.config);
  return resolve(file);
}

async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  }
  const ask = (prompt: string): Promise<string> =>
    new Promise((done) => {
      const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
      // Nothing typed is echoed.
      (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s) => {
        if (s.startsWith(prompt)) process.stderr.write(prompt);
      };
      rl.question(prompt, (answer) => {
        rl.close();
        process.stderr.write('\n');
        done(answer);
      });
    });
  const first = await ask('Password: ');
  if ((await ask('Again: ')) !== first) throw new CliError('the passwords differ', EXIT.dataError);
  return first;
}

export async function passwdCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c', default: DEFAULT_CONFIG },
      domains: { type: 'string' },
      delete: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(PASSWD_HELP);
    return EXIT.ok;
  }
  const [name, ...extra] = positionals;
  if (name === undefined || extra.length > 0) throw usageError('passwd takes one USER (see dkim-proxy passwd --help)');
  const file = await usersFileOf(values.config);
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`, EXIT.ioError);
  }
  const parsed = parseUsers(text);
  if (!parsed.ok) throw new CliError(`${file}:${parsed.line}: ${parsed.message}`, EXIT.dataError);
  const users = new Map(parsed.users);
  if (values.delete) {
    if (!users.delete(name)) throw new CliError(`${name} is not in ${file}`, EXIT.usage);
  } else {
    const domains = (values.domains ?? '').split(',').map((d) => d.trim().toLowerCase()).filter(Boolean);
    const known = users.get(name)?.domains;
    if (domains.length === 0 && known === undefined) throw usageError(`--domains: which domains may ${name} sign for?`);
    for (const d of domains) if (!isDomainName(d)) throw usageError(`--domains: "${d}" is not a domain name`);
    if (!isUserName(name)) throw usageError(`"${name}" is not a user name (letters, digits and . _ @ + -)`);
    const password = await readPassword();
    if (password.length < 8) throw new CliError('the password is shorter than 8 characters', EXIT.dataError);
    const user: AuthUser = { name, hash: await hashPassword(password), domains: domains.length > 0 ? domains : known! };
    users.set(name, user);
  }
  // Written beside the file and renamed over it: a reader never sees half a file.
  const tmp = join(dirname(file), `.${Date.now()}.${process.pid}.users.tmp`);
  try {
    await writeFile(tmp, formatUsers(users.values()), { mode: 0o600, flag: 'wx' });
    await rename(tmp, file);
  } catch (err) {
    throw new CliError(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, EXIT.cantCreate);
  }
  process.stderr.write(`${values.delete ? 'removed' : 'set'} ${name} in ${file}; reload dkim-proxy (SIGHUP) to use it\n`);
  return EXIT.ok;
}
