import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatKeyRecord, generateSigningKey, KEY_KINDS, splitTxt, type KeyKind } from '../dkim/index.js';
import { isDomainName, isSelector } from '../dkim/signature.js';
import { CliError, EXIT, usageError } from './output.js';
import { paint } from './style.js';

export const KEYGEN_HELP = `Usage: dkim-proxy keygen --domain D --selector S [options]

Generates a private key, writes it to DIR/D/S.key (mode 0600), and prints the
DNS TXT record to publish, split into 255-octet strings as a zone file needs.
With --zone, prints a whole BIND zone-file line instead.

Options:
  -d, --domain D        the signing domain
  -s, --selector S      the selector
  -a, --algorithm A     rsa-2048 (default) | rsa-1024 | rsa-4096 | ed25519
  -o, --out DIR         key directory (default: keys)
      --zone            print SELECTOR._domainkey.DOMAIN. IN TXT ( "..." "..." )
      --testing         publish the record with t=y (receivers treat mail as unsigned)
      --force           overwrite an existing key file
      --json            print {file, algorithm, name, record, strings} as JSON
`;

export async function keygenCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      domain: { type: 'string', short: 'd' },
      selector: { type: 'string', short: 's' },
      algorithm: { type: 'string', short: 'a', default: 'rsa-2048' },
      out: { type: 'string', short: 'o', default: 'keys' },
      testing: { type: 'boolean', default: false },
      zone: { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(KEYGEN_HELP);
    return EXIT.ok;
  }
  if (!values.domain || !values.selector) throw usageError('keygen needs --domain and --selector (see dkim-proxy keygen --help)');
  const domain = values.domain.toLowerCase().replace(/\.$/, '');
  if (!isDomainName(domain)) throw usageError(`--domain: "${values.domain}" is not a domain name`);
  if (!isSelector(values.selector)) throw usageError(`--selector: "${values.selector}" is not a selector (DNS labels: a-z 0-9 - _)`);
  if (!(KEY_KINDS as readonly string[]).includes(values.algorithm)) throw usageError(`--algorithm: expected one of ${KEY_KINDS.join(', ')}, got "${values.algorithm}"`);

  const { pem, key } = generateSigningKey(values.algorithm as KeyKind);
  const dir = join(values.out, domain);
  const file = join(dir, `${values.selector}.key`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(file, pem, { mode: 0o600, flag: values.force ? 'w' : 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new CliError(`${file} exists; use --force to replace it (and publish the new record first)`, EXIT.cantCreate);
    throw new CliError(`cannot write ${file}: ${code ?? String(err)}`, EXIT.cantCreate);
  }
  const record = formatKeyRecord(key, { testing: values.testing });
  const name = `${values.selector}._domainkey.${domain}.`;
  const parts = splitTxt(record);
  const strings = parts.map((s) => `"${s}"`).join(' ');
  const note = values.algorithm === 'ed25519' ? 'many receivers cannot verify ed25519 yet; sign with an RSA key as well' : undefined;
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ file, algorithm: values.algorithm, name, record, strings: parts, ...(note ? { note } : {}) }, null, 2)}\n`);
    return EXIT.ok;
  }
  const p = paint(process.stderr);
  process.stderr.write(`${p.good('wrote')} ${file} (${values.algorithm}, mode 0600)\npublish this TXT record at ${p.bold(name)}\n`);
  process.stdout.write(values.zone ? `${name} IN TXT ( ${strings} )\n` : `${strings}\n`);
  if (note) process.stderr.write(`${p.warn('note:')} ${note}.\n`);
  return EXIT.ok;
}
