/**
 * The ARC implementations we are judged against, driven for real with keys
 * from the test DNS server: dkimpy (python3-dkim), Mail::DKIM
 * (libmail-dkim-perl) and mailauth (devDependency).
 */
import { execFile } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestDns } from './dns-server.js';
import { ROOT } from './fixtures.js';

const run = promisify(execFile);
const OPTS = { timeout: 60_000, maxBuffer: 16 * 1024 * 1024, encoding: 'latin1' as const, env: { ...process.env, PYTHONPATH: join(ROOT, 'test/peers') } };
const PY = join(ROOT, 'test/peers/arc_dkimpy.py');
const PL = join(ROOT, 'test/peers/maildkim.pl');

// mailauth has no type declarations; only these two are used.
const mailauth = createRequire(import.meta.url)('mailauth') as {
  authenticate(message: Buffer, options: Record<string, unknown>): Promise<{ arc: { status: { result: string; comment?: string } } }>;
};
const { sealMessage } = createRequire(import.meta.url)('mailauth/lib/arc') as {
  sealMessage(message: Buffer, seal: Record<string, unknown>): Promise<Buffer>;
};

export type Peer = 'dkimpy' | 'maildkim' | 'mailauth';
export const PEERS: readonly Peer[] = ['dkimpy', 'maildkim', 'mailauth'];

const resultColumn = (stdout: string): string[] =>
  stdout
    .split('\n')
    .filter((l) => l.includes('\t'))
    .map((l) => l.split('\t')[1]!);

/** Each peer's chain result (none, pass, fail) for each file, in order; one process per peer. */
export async function peerArcResults(files: readonly string[], dns: TestDns, peers: readonly Peer[] = PEERS): Promise<Partial<Record<Peer, string[]>>> {
  const out: Partial<Record<Peer, string[]>> = {};
  const jobs: Promise<void>[] = [];
  if (peers.includes('dkimpy')) jobs.push(run('/usr/bin/python3', [PY, 'verify', dns.server, ...files], OPTS).then(({ stdout }) => void (out.dkimpy = resultColumn(stdout))));
  if (peers.includes('maildkim')) jobs.push(run('perl', [PL, 'arc-verify', String(dns.port), ...files], OPTS).then(({ stdout }) => void (out.maildkim = resultColumn(stdout))));
  if (peers.includes('mailauth')) {
    const resolver = new Resolver();
    resolver.setServers([dns.server]);
    const resolve = (name: string, type: string): Promise<unknown> => resolver.resolve(name, type);
    jobs.push(
      Promise.all(files.map((f) => mailauth.authenticate(readFileSync(f), { ip: '192.0.2.1', helo: 'x.example', sender: 'a@example.com', mta: 'oracle.test', disableDmarc: true, resolver: resolve }))).then(
        (rs) => void (out.mailauth = rs.map((r) => r.arc.status.result)),
      ),
    );
  }
  await Promise.all(jobs);
  return out;
}

export interface PeerSealer {
  readonly domain: string;
  readonly selector: string;
  /** PEM (PKCS#1 RSA), in a file for the Python and Perl drivers. */
  readonly keyFile: string;
  readonly authservId: string;
}

/**
 * The peer's new ARC set (AS, AMS, AAR; CRLF) for the message in `file`,
 * the chain's state taken from its Authentication-Results of `authservId`
 * (mailauth is given it as `cv`).
 */
export async function peerSeal(peer: Peer, file: string, s: PeerSealer, dns: TestDns, cv: string): Promise<Buffer> {
  switch (peer) {
    case 'dkimpy': {
      const { stdout } = await run('/usr/bin/python3', [PY, 'seal', dns.server, s.keyFile, s.domain, s.selector, s.authservId, file], OPTS);
      return Buffer.from(stdout.replace(/\r?\n/g, '\r\n').replace(/(\r\n)+$/, '\r\n'), 'latin1');
    }
    case 'maildkim': {
      const { stdout } = await run('perl', [PL, 'arc-seal', String(dns.port), s.keyFile, s.domain, s.selector, s.authservId, file], OPTS);
      return Buffer.from(stdout.replace(/\r?\n/g, '\r\n'), 'latin1');
    }
    case 'mailauth':
      return sealMessage(readFileSync(file), { signingDomain: s.domain, selector: s.selector, privateKey: readFileSync(s.keyFile), authResults: `${s.authservId}; arc=${cv}`, cv });
  }
}
