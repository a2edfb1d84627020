#!/usr/bin/env node
/** The `dkim-proxy` command. */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { checkConfigCommand, CHECK_CONFIG_HELP } from './check-config.js';
import { dnsCheckCommand, DNS_CHECK_HELP } from './dns-check.js';
import { explainCommand, EXPLAIN_HELP } from './explain.js';
import { healthCommand, HEALTH_HELP } from './health.js';
import { keygenCommand, KEYGEN_HELP } from './keygen.js';
import { passwdCommand, PASSWD_HELP } from './passwd.js';
import { rotateCommand, ROTATE_HELP } from './rotate.js';
import { runCommand, RUN_HELP } from './run.js';
import { CliError, EXIT } from './output.js';
import { sealCommand, SEAL_HELP } from './seal.js';
import { signCommand, SIGN_HELP } from './sign.js';
import { spfCommand, SPF_HELP } from './spf.js';
import { statsCommand, STATS_HELP } from './stats.js';
import { verifyCommand, VERIFY_HELP } from './verify.js';

const HELP = `Usage: dkim-proxy <command> [options]

Commands:
  run           start the proxies configured in [out] and [in]
  sign          sign a message (file or stdin) and print it
  verify        verify a message's DKIM signatures (and ARC chain) and print Authentication-Results
  seal          add an ARC set to a message and print it
  explain       why each signature of a message verifies or not, in one word, with the fix
  spf           evaluate SPF for a client address, sender and HELO name
  keygen        make a signing key and print the DNS record to publish
  rotate        key rotation: make the next key (new), what is due (status), put one away (retire)
  passwd        add or update an SMTP AUTH user and the domains it may sign for
  check-config  validate a configuration and print the signing table
  dns-check     check that every configured key is published and matches
  stats         what the running proxy has signed, verified and relayed
  health        is the running proxy up (and, with --ready, ready for mail)?

Run 'dkim-proxy <command> --help' for a command's options.
`;

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; help: string }> = {
  run: { run: runCommand, help: RUN_HELP },
  sign: { run: signCommand, help: SIGN_HELP },
  verify: { run: verifyCommand, help: VERIFY_HELP },
  seal: { run: sealCommand, help: SEAL_HELP },
  explain: { run: explainCommand, help: EXPLAIN_HELP },
  spf: { run: spfCommand, help: SPF_HELP },
  keygen: { run: keygenCommand, help: KEYGEN_HELP },
  rotate: { run: rotateCommand, help: ROTATE_HELP },
  passwd: { run: passwdCommand, help: PASSWD_HELP },
  'check-config': { run: checkConfigCommand, help: CHECK_CONFIG_HELP },
  'dns-check': { run: dnsCheckCommand, help: DNS_CHECK_HELP },
  stats: { run: statsCommand, help: STATS_HELP },
  health: { run: healthCommand, help: HEALTH_HELP },
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-V') {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`dkim-proxy ${pkg.version}\n`);
    return EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`dkim-proxy: unknown command "${name}"\n\n${HELP}`);
    return EXIT.usage;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`dkim-proxy: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      // node:util parseArgs: unknown option, missing value...
      process.stderr.write(`dkim-proxy: ${err.message}\n`);
      process.exitCode = EXIT.usage;
    } else {
      process.stderr.write(`dkim-proxy: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = EXIT.software;
    }
    // A worker's channel to the primary would keep it alive, the failure unseen.
    if (cluster.isWorker) cluster.worker?.disconnect();
  },
);
