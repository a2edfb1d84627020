/**
 * The independent implementations, driven for real: Mail::DKIM (Perl),
 * dkimpy (Python) and OpenDKIM (C), all from Debian packages.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './fixtures.js';

const run = promisify(execFile);
const OPTS = { timeout: 60_000, maxBuffer: 64 * 1024 * 1024, encoding: 'latin1' as const };
const PERL = join(ROOT, 'test/peers/maildkim.pl');
const PYTHON = join(ROOT, 'test/peers/dkimpy_tool.py');

export interface PeerResult {
  readonly file: string;
  readonly result: string;
  readonly detail: string;
}

function parseLines(stdout: string): PeerResult[] {
  return stdout
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [file = '', result = '', ...rest] = l.split('\t');
      return { file, result, detail: rest.join(' ') };
    });
}

/** Mail::DKIM results, one per signature, for many files in one process. */
export async function mailDkimVerify(files: readonly string[], dnsPort: number): Promise<PeerResult[]> {
  const { stdout } = await run('perl', [PERL, 'verify', String(dnsPort), ...files], OPTS);
  return parseLines(stdout);
}

export async function dkimpyVerify(files: readonly string[], dnsPort: number): Promise<PeerResult[]> {
  const { stdout } = await run('/usr/bin/python3', [PYTHON, 'verify', String(dnsPort), ...files], OPTS);
  return parseLines(stdout);
}

/**
 * OpenDKIM's test mode (`opendkim -t`) with keys from a TestPublicKeys file;
 * its Authentication-Results debug line has one `dkim=` per signature.
 */
export async function openDkimVerify(file: string, confDir: string, keysFile: string): Promise<PeerResult[]> {
  const conf = join(confDir, 'opendkim-verify.conf');
  writeFileSync(conf, `TestPublicKeys ${keysFile}\nMode v\n`);
  const { stdout, stderr } = await run('opendkim', ['-x', conf, '-t', file, '-vv'], OPTS);
  const out = stdout + stderr;
  const ar = /hname='Authentication-Results' hvalue='([^']*)'/.exec(out)?.[1] ?? '';
  const results = [...ar.matchAll(/dkim=(\w+)/g)].map((m) => ({ file, result: m[1]!, detail: ar }));
  return results.length > 0 ? results : [{ file, result: 'none', detail: out }];
}

/** A signer's new DKIM-Signature as a header field to put on top: CRLF line ends, exactly one at its end. */
export function asHeaderField(field: string): string {
  return field.replace(/\r?\n/g, '\r\n').replace(/(\r\n)*$/, '\r\n');
}

export async function mailDkimSign(file: string, keyFile: string, domain: string, selector: string, canon: string): Promise<string> {
  const { stdout } = await run('perl', [PERL, 'sign', keyFile, domain, selector, canon, file], OPTS);
  return stdout;
}

export async function dkimpySign(file: string, keyFile: string, domain: string, selector: string, canon: string, algorithm: string): Promise<string> {
  const { stdout } = await run('/usr/bin/python3', [PYTHON, 'sign', keyFile, domain, selector, canon, algorithm, file], OPTS);
  return stdout;
}

/** OpenDKIM signs in test mode too; the new field comes back on an INSHEADER debug line (LF-folded). */
export async function openDkimSign(file: string, confDir: string, keyFile: string, domain: string, selector: string, canon: string): Promise<string> {
  const conf = join(confDir, `opendkim-sign-${selector}.conf`);
  writeFileSync(conf, `Mode s\nDomain ${domain}\nSelector ${selector}\nKeyFile ${keyFile}\nCanonicalization ${canon}\nRequireSafeKeys false\nSignatureAlgorithm ${selector === 'ed' ? 'ed25519-sha256' : 'rsa-sha256'}\n`);
  const { stdout, stderr } = await run('opendkim', ['-x', conf, '-t', file, '-vv'], OPTS);
  const m = /hname='DKIM-Signature' hvalue='([^']*)'/.exec(stdout + stderr);
  if (!m) throw new Error(`opendkim did not sign ${file}: ${stdout}${stderr}`);
  return `DKIM-Signature: ${m[1]!.replace(/\r?\n/g, '\r\n')}\r\n`;
}
