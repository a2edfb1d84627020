/**
 * DMARC results against independent implementations, for real: generated
 * messages (signed by us, some not, some broken in transit), keys, SPF and
 * DMARC records served by the wire test server on loopback, and clients
 * inside and outside each SPF record. The same cases go through our `in`
 * processor, ValiMail's authheaders (Debian python3-authheaders, with pyspf
 * and dkimpy underneath) and mailauth (devDependency). Our
 * Authentication-Results are parsed by python3-authres and by
 * Mail::AuthenticationResults.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { formatKeyRecord, parsePrivateKey, signMessage, type SigningKey } from '../src/dkim/index.js';
import { createKeyLookup } from '../src/dns/resolver.js';
import { createWireResolver } from '../src/dns/wire.js';
import { processMessage } from '../src/pipeline/offline.js';
import { VerifyingProcessor, type InboundReport, type VerifySettings } from '../src/pipeline/verify.js';
import { cli } from './helpers/cli.js';
import { fixturePath } from './helpers/fixtures.js';
import { startWireDns, type WireDnsServer, type ZoneRecord } from './helpers/wire-dns-server.js';
import { testKey } from './helpers/test-keys.js';

const run = promisify(execFile);

interface MailauthResult {
  readonly dmarc: { readonly status: { readonly result: string } } | false;
  readonly spf: { readonly status: { readonly result: string } } | false;
}
// mailauth has no type declarations; only authenticate() is used.
const { authenticate } = createRequire(import.meta.url)('mailauth') as {
  authenticate(message: Buffer, options: { ip: string; helo: string; sender: string; mta: string; resolver: (name: string, type: string) => Promise<unknown> }): Promise<MailauthResult>;
};

interface Domain {
  readonly name: string;
  /** The related domain for alignment: a subdomain of an organizational domain, or the organizational domain of a subdomain. */
  readonly related: string;
  readonly dmarc?: string;
  readonly spf: string;
  /** adkim=s or aspf=s: mailauth 4.9 aligns strict as relaxed, so these are compared with authheaders only. */
  readonly strict?: boolean;
}

const DOMAINS: readonly Domain[] = [
  { name: 'alpha.com', related: 'mail.alpha.com', dmarc: 'v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@alpha.com', spf: 'v=spf1 ip4:192.0.2.0/24 -all' },
  { name: 'mail.alpha.com', related: 'alpha.com', spf: 'v=spf1 ip4:192.0.2.0/24 -all' },
  { name: 'beta.co.uk', related: 'news.beta.co.uk', dmarc: 'v=DMARC1; p=quarantine; adkim=s; aspf=s', spf: 'v=spf1 ip4:198.51.100.0/24 -all', strict: true },
  { name: 'news.beta.co.uk', related: 'beta.co.uk', spf: 'v=spf1 ip4:198.51.100.0/24 -all', strict: true },
  { name: 'gamma.org', related: 'lists.gamma.org', dmarc: 'v=DMARC1; p=none', spf: 'v=spf1 ip4:192.0.2.0/24 ~all' },
  { name: 'lists.gamma.org', related: 'gamma.org', dmarc: 'v=DMARC1; p=reject', spf: 'v=spf1 ip4:198.51.100.0/24 -all' },
  { name: 'delta.net', related: 'www.delta.net', spf: 'v=spf1 ip4:192.0.2.0/24 -all' },
];
const OTHER = 'other.net';
const SIGNERS = [...new Set([...DOMAINS.flatMap((d) => [d.name, d.related]), OTHER])];
const CLIENTS = ['192.0.2.10', '198.51.100.7', '203.0.113.1'];

type Signature = 'none' | 'from' | 'related' | 'other' | 'broken';

interface Case {
  readonly from: Domain;
  readonly signature: Signature;
  readonly mailFrom: string;
  readonly ip: string;
  readonly file: string;
  readonly message: Buffer;
  readonly strict: boolean;
}

const keys = new Map<string, SigningKey>();
let dns: WireDnsServer;
let dir: string;
const cases: Case[] = [];

function zone(): Map<string, ZoneRecord[]> {
  const z = new Map<string, ZoneRecord[]>();
  const txt = (name: string, text: string): void => {
    const strings: Buffer[] = [];
    for (let k = 0; k < text.length; k += 255) strings.push(Buffer.from(text.slice(k, k + 255), 'latin1'));
    z.set(name, [...(z.get(name) ?? []), { type: 'TXT', data: strings }]);
  };
  for (const d of DOMAINS) {
    txt(d.name, d.spf);
    if (d.dmarc) txt(`_dmarc.${d.name}`, d.dmarc);
  }
  txt(OTHER, 'v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all');
  for (const [d, key] of keys) txt(`sel._domainkey.${d}`, formatKeyRecord(key.key));
  return z;
}

function message(from: Domain, signature: Signature, n: number): Buffer {
  const text = [`From: Alice <alice@${from.name}>`, 'To: bob@example.net', `Subject: case ${n}`, 'Date: Tue, 01 Dec 2026 10:00:00 +0000', `Message-ID: <case-${n}@${from.name}>`, '', 'Hello Bob,', '', 'The report is attached.', ''].join('\r\n');
  const bytes = Buffer.from(text, 'latin1');
  if (signature === 'none') return bytes;
  const d = signature === 'from' || signature === 'broken' ? from.name : signature === 'related' ? from.related : OTHER;
  const field = signMessage(bytes, [{ domain: d, selector: 'sel', key: keys.get(d)!, algorithm: 'rsa-sha256', canonicalization: { header: 'relaxed', body: 'relaxed' } }], Math.floor(Date.now() / 1000)).join('');
  const signed = Buffer.concat([Buffer.from(field, 'latin1'), bytes]);
  return signature === 'broken' ? Buffer.from(signed.toString('latin1').replace('The report', 'A report'), 'latin1') : signed;
}

before(async () => {
  for (const d of SIGNERS) {
    const parsed = parsePrivateKey(testKey('rsa-2048').pem);
    if (!parsed.ok) throw new Error(parsed.message);
    keys.set(d, parsed.key);
  }
  dns = await startWireDns(zone());
  dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-dmarc-'));
  let n = 0;
  for (const from of DOMAINS) {
    for (const signature of ['none', 'from', 'related', 'other', 'broken'] as const) {
      for (const mailDomain of [from.name, from.related, OTHER]) {
        for (const ip of CLIENTS) {
          const m = message(from, signature, n);
          const file = join(dir, `case-${n}.eml`);
          writeFileSync(file, m);
          cases.push({ from, signature, mailFrom: `bounce@${mailDomain}`, ip, file, message: m, strict: from.strict === true });
          n++;
        }
      }
    }
  }
});

after(async () => {
  await dns?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const settings: VerifySettings = {
  authservId: 'mx.test',
  maxSignatures: 10,
  allowSha1: false,
  allowShortKeys: false,
  checks: ['dkim', 'spf', 'dmarc'],
  hostname: 'mx.test',
  receivedSpf: false,
  rejectFail: false,
  rejectError: false,
  xDkimAuthenticationResults: false,
};

async function ours(c: Case): Promise<InboundReport> {
  const processor = new VerifyingProcessor({
    settings: () => settings,
    lookup: createKeyLookup({ servers: [dns.server], timeoutMs: 3000 }),
    dns: createWireResolver({ servers: [dns.server], timeoutMs: 3000 }),
    now: () => Math.floor(Date.now() / 1000),
  });
  return (await processMessage(processor, c.message, { clientAddress: c.ip, helo: 'client.example.net', mailFrom: c.mailFrom, rcptTo: ['bob@example.net'] })).report;
}

interface OracleRow {
  dmarc: string | null;
  policy: string | null;
  spf: string | null;
  dkim: string | null;
  header: string;
}

async function authheaders(): Promise<OracleRow[]> {
  const child = run('/usr/bin/python3', [fixturePath('..', 'peers', 'dmarc_authheaders.py')], { timeout: 300_000, maxBuffer: 1 << 24 });
  child.child.stdin!.end(JSON.stringify({ server: dns.server, cases: cases.map((c) => ({ file: c.file, ip: c.ip, mailFrom: c.mailFrom, helo: 'client.example.net' })) }));
  return JSON.parse((await child).stdout) as OracleRow[];
}

async function mailauth(c: Case): Promise<{ dmarc: string; spf: string }> {
  const resolver = new Resolver({ timeout: 3000, tries: 1 });
  resolver.setServers([dns.server]);
  const r = await authenticate(c.message, {
    ip: c.ip,
    helo: 'client.example.net',
    sender: c.mailFrom,
    mta: 'mx.test',
    resolver: (name, type) => resolver.resolve(name, type),
  });
  return { dmarc: r.dmarc ? r.dmarc.status.result : 'none', spf: r.spf ? r.spf.status.result : 'none' };
}

const describeCase = (c: Case): string => `From ${c.from.name}, signature ${c.signature}, MAIL FROM ${c.mailFrom}, client ${c.ip}`;

describe('DMARC against authheaders and mailauth', () => {
  let mine: InboundReport[];
  before(async () => {
    mine = [];
    for (const c of cases) mine.push(await ours(c));
  });

  it('the same DMARC result and policy as authheaders on every generated case', async () => {
    const theirs = await authheaders();
    const rows = cases.map((c, k) => ({ c, ours: mine[k]!, theirs: theirs[k]! }));
    // authheaders 0.15 applies sp= to the From domain's own record too (RFC 7489 §6.3: sp is for subdomains), so the
    // policy is compared where that cannot matter: records without sp, and subdomains under their organization's record.
    const policyComparable = (r: (typeof rows)[number]): boolean => r.ours.dmarc!.result !== 'none' && (!/\bsp=/.test(r.c.from.dmarc ?? '') || r.ours.dmarc!.recordAt !== r.c.from.name);
    const disagree = rows.filter((r) => r.ours.dmarc!.result !== r.theirs.dmarc || (policyComparable(r) && r.ours.dmarc!.policy !== r.theirs.policy) || r.ours.spf!.result !== r.theirs.spf);
    assert.deepEqual(
      disagree.map((r) => `${describeCase(r.c)}: ours dmarc=${r.ours.dmarc!.result} p=${r.ours.dmarc!.policy} spf=${r.ours.spf!.result}; authheaders ${r.theirs.header.replace(/\s+/g, ' ')}`),
      [],
    );
    assert.ok(rows.filter(policyComparable).length >= 100, 'policies compared on most cases');
    const results = new Set(rows.map((r) => r.ours.dmarc!.result));
    assert.deepEqual([...results].sort(), ['fail', 'none', 'pass'], 'the set covers pass, fail and none');
    assert.deepEqual([...new Set(rows.map((r) => r.ours.dmarc!.policy).filter(Boolean))].sort(), ['none', 'quarantine', 'reject']);
  });

  it('the same DMARC result as mailauth on every case with relaxed alignment', async () => {
    const relaxed = cases.map((c, k) => ({ c, ours: mine[k]! })).filter((r) => !r.c.strict);
    const disagree: string[] = [];
    for (const r of relaxed) {
      const theirs = await mailauth(r.c);
      if (theirs.dmarc !== r.ours.dmarc!.result || theirs.spf !== r.ours.spf!.result) disagree.push(`${describeCase(r.c)}: ours dmarc=${r.ours.dmarc!.result} spf=${r.ours.spf!.result}; mailauth dmarc=${theirs.dmarc} spf=${theirs.spf}`);
    }
    assert.deepEqual(disagree, []);
    assert.ok(relaxed.length >= 150, `${relaxed.length} cases compared`);
  });

  it('our Authentication-Results parse with python3-authres and Mail::AuthenticationResults, with the same words', async () => {
    const sample = mine.filter((_, k) => k % 9 === 0).map((r) => r.authenticationResults.replace(/\r\n$/, ''));
    const py = await run('/usr/bin/python3', [fixturePath('..', 'peers', 'authres_check.py'), ...sample]);
    const blocks = py.stdout.split('--\n').filter((b) => b.trim() !== '');
    assert.equal(blocks.length, sample.length);
    const perl = await run('perl', [fixturePath('..', 'peers', 'authres_check.pl'), ...sample]);
    const perlBlocks = perl.stdout.split('--\n').filter((b) => b.trim() !== '');
    sample.forEach((field, k) => {
      const words = [...field.matchAll(/\b(spf|dkim|dmarc)=(\w+)/g)].map((m) => `${m[1]}=${m[2]}`);
      const pyWords = blocks[k]!.split('\n').slice(1).filter(Boolean).map((l) => l.split(' ')[0]!);
      assert.deepEqual(pyWords, words, field);
      assert.deepEqual(perlBlocks[k]!.trim().split('\n'), words, field);
      assert.match(blocks[k]!, /header\.from=/, 'header.from is read as a property');
      assert.match(blocks[k]!, /smtp\.mailfrom=bounce@/, 'smtp.mailfrom is read as a property');
    });
  });
});

describe('dkim-proxy verify --client-ip', () => {
  const find = (from: string, signature: Signature, mailFrom: string, ip: string): Case => cases.find((c) => c.from.name === from && c.signature === signature && c.mailFrom === mailFrom && c.ip === ip)!;

  it('runs SPF and DMARC too, prints the header in would add, and adds spf and dmarc to --json', async () => {
    const c = find('alpha.com', 'none', 'bounce@alpha.com', '198.51.100.7');
    const r = await cli(['verify', '--dns-server', dns.server, '--client-ip', c.ip, '--mail-from', c.mailFrom, '--helo', 'client.example.net', '--authserv-id', 'mx.test', '--json', c.file]);
    assert.equal(r.code, 1, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(out['spf'], { result: 'fail', domain: 'alpha.com', identity: 'mailfrom', mechanism: '-all', explanation: null, reason: 'alpha.com: matched -all' });
    const dmarc = out['dmarc'] as Record<string, unknown>;
    assert.deepEqual({ result: dmarc['result'], policy: dmarc['policy'], disposition: dmarc['disposition'], domain: dmarc['domain'], aligned: dmarc['aligned'] }, { result: 'fail', policy: 'reject', disposition: 'reject', domain: 'alpha.com', aligned: { dkim: false, spf: false } });
    assert.equal(out['authenticationResults'], 'Authentication-Results: mx.test; spf=fail smtp.mailfrom=bounce@alpha.com (alpha.com: matched -all); dkim=none; dmarc=fail (p=reject dis=reject) header.from=alpha.com; arc=none');

    const pass = find('mail.alpha.com', 'related', 'bounce@other.net', '203.0.113.1');
    const text = await cli(['verify', '--dns-server', dns.server, '--client-ip', pass.ip, '--mail-from', pass.mailFrom, '--helo', 'client.example.net', pass.file]);
    assert.equal(text.code, 0, text.stdout + text.stderr);
    assert.match(text.stdout, /^fail +spf mailfrom=bounce@other\.net: other\.net: matched -all\n/);
    assert.match(text.stdout, /\npass +dmarc mail\.alpha\.com p=quarantine dis=none: aligned DKIM d=alpha\.com\n/);
    assert.match(text.stdout, /\tdmarc=pass \(p=quarantine dis=none\) header\.from=mail\.alpha\.com;\n\tarc=none\n$/);
  });

  it('without --client-ip it checks DKIM alone, as before; --mail-from alone is a usage error', async () => {
    const c = find('alpha.com', 'from', 'bounce@alpha.com', '192.0.2.10');
    const r = await cli(['verify', '--dns-server', dns.server, '--json', c.file]);
    assert.equal(r.code, 0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(out['spf'], undefined);
    assert.equal(out['dmarc'], undefined);
    const usage = await cli(['verify', '--mail-from', 'a@alpha.com', c.file]);
    assert.equal(usage.code, 64);
    assert.match(usage.stderr, /give --client-ip too/);
  });
});
