/**
 * OpenDMARC (Debian's opendmarc) as a milter on loopback, for the Postfix
 * test: it reads the Authentication-Results of a trusted authserv-id (ours)
 * and adds its own DMARC verdict. It resolves through the C library, which
 * has no way to name a port: it runs in a private mount namespace whose
 * /etc/resolv.conf names the test DNS server (port 53 on an address of its
 * own on loopback), and nothing outside that namespace changes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './eventually.js';

export interface OpenDmarc {
  readonly port: number;
  readonly output: () => string;
  stop(): Promise<void>;
}

export async function startOpenDmarc(opts: { readonly port: number; readonly dnsAddress: string; readonly trustedAuthservId: string; readonly authservId: string }): Promise<OpenDmarc> {
  const dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-opendmarc-'));
  const resolv = join(dir, 'resolv.conf');
  writeFileSync(resolv, `nameserver ${opts.dnsAddress}\noptions timeout:2 attempts:1\n`);
  // Its default IgnoreHosts is 127.0.0.1, and our `in` connects from there: ignore an address nobody uses instead.
  const ignore = join(dir, 'ignore-hosts');
  writeFileSync(ignore, '192.0.2.254\n');
  const conf = join(dir, 'opendmarc.conf');
  writeFileSync(
    conf,
    [
      `Socket inet:${opts.port}@127.0.0.1`,
      `AuthservID ${opts.authservId}`,
      `TrustedAuthservIDs ${opts.trustedAuthservId}`,
      'PublicSuffixList /usr/share/publicsuffix/public_suffix_list.dat',
      `IgnoreHosts ${ignore}`,
      'SPFSelfValidate false',
      'SPFIgnoreResults false',
      'RejectFailures false',
      'FailureReports false',
      'RequiredHeaders false',
      'Syslog false',
      `PidFile ${join(dir, 'pid')}`,
      '',
    ].join('\n'),
  );
  let output = '';
  const child: ChildProcess = spawn('unshare', ['--mount', 'sh', '-c', `mount --bind "${resolv}" /etc/resolv.conf && exec opendmarc -f -v -c "${conf}"`], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.on('error', (err) => (output += `${err.message} (Debian: apt-get install opendmarc)`));
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const listening = (): Promise<boolean> =>
    new Promise((resolve) => {
      const s = connect({ host: '127.0.0.1', port: opts.port });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
  try {
    await eventually('OpenDMARC listening', async () => (child.exitCode !== null ? Promise.reject(new Error(`opendmarc exited: ${output}`)) : listening()), { timeoutMs: 10_000, everyMs: 50, detail: () => output });
  } catch (err) {
    await stop();
    throw err;
  }
  return { port: opts.port, output: () => output, stop };
}
