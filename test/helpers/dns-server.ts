/**
 * Real DNS for tests: Debian's dnsmasq on 127.0.0.1 and a free port, serving
 * the TXT records given (split into 255-octet strings, as a zone must), and
 * authoritative (NXDOMAIN) for the listed domains. Also a silent server that
 * never answers, for timeout paths.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { eventually } from './eventually.js';
import { splitTxt } from '../../src/dkim/index.js';

export interface TestDns {
  readonly port: number;
  readonly server: string;
  stop(): Promise<void>;
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  s.close();
  return port;
}

const quote = (s: string): string => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`;

/** `at`: a fixed address and port instead of 127.0.0.1 and a free port (for a peer that can only ask port 53). */
export async function startDnsmasq(
  records: ReadonlyMap<string, readonly string[]>,
  localDomains: readonly string[],
  at?: { readonly address: string; readonly port: number },
  /** The TTL of its answers (dnsmasq's default is 0: not to be cached). */
  ttlSeconds = 0,
): Promise<TestDns> {
  const dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-dns-'));
  const lines: string[] = [];
  for (const [name, values] of records) for (const v of values) lines.push(`txt-record=${name},${splitTxt(v).map(quote).join(',')}`);
  for (const d of localDomains) lines.push(`local=/${d}/`);
  lines.push('txt-record=ready.dkim-proxy.test,"ready"', 'local=/dkim-proxy.test/');
  const conf = join(dir, 'dnsmasq.conf');
  writeFileSync(conf, `${lines.join('\n')}\n`);

  try {
    // A port can be taken between probing and binding; try a few.
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = at?.port ?? (await freeUdpPort());
      const address = at?.address ?? '127.0.0.1';
      const child = spawn(
        'dnsmasq',
        ['--keep-in-foreground', '--no-resolv', '--no-hosts', '--no-poll', `--listen-address=${address}`, '--bind-interfaces', `--port=${port}`, `--conf-file=${conf}`, '--user=root', '--pid-file=', '--cache-size=0', '--log-facility=-', `--local-ttl=${ttlSeconds}`],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      // Not installed: an 'error' event, which unheard would be an uncaught exception after the test.
      child.on('error', (err) => (stderr += `${err.message} (Debian: apt-get install dnsmasq-base)`));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      if (await ready(child, address, port)) {
        return {
          port,
          server: `${address}:${port}`,
          async stop() {
            await stopChild(child);
            rmSync(dir, { recursive: true, force: true });
          },
        };
      }
      await stopChild(child);
      if (at || !/Address already in use/.test(stderr)) throw new Error(`dnsmasq did not start: ${stderr.trim()}`);
    }
    throw new Error('dnsmasq: no free port after 5 attempts');
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Waits until dnsmasq answers, at most 5 s; false if it exits first or never answers. */
async function ready(child: ChildProcess, address: string, port: number): Promise<boolean> {
  const resolver = new Resolver({ timeout: 200, tries: 1 });
  resolver.setServers([`${address}:${port}`]);
  const state = await eventually(
    'dnsmasq answering',
    async (): Promise<'up' | 'exited' | false> => {
      if (child.exitCode !== null || child.signalCode !== null) return 'exited';
      // Not up yet: the resolver's own 200 ms timeout paces this.
      return resolver.resolveTxt('ready.dkim-proxy.test').then(() => 'up' as const, () => false as const);
    },
    { timeoutMs: 5000, everyMs: 20 },
  ).catch(() => 'timeout' as const);
  return state === 'up';
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}

/** A UDP "DNS server" on loopback that reads queries and never answers. */
export async function startSilentDns(): Promise<TestDns> {
  const s = createSocket('udp4');
  s.on('message', () => {});
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  return {
    port,
    server: `127.0.0.1:${port}`,
    async stop() {
      s.close();
    },
  };
}
