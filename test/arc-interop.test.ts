/**
 * ARC against the independent implementations, for real, with every key
 * served by dnsmasq on loopback: our seals validate in dkimpy, Mail::DKIM
 * and mailauth; chains they seal (one, two and three hops, a list's changes
 * between hops) validate in ours with the cv they give; tampering and broken
 * chains fail in all four alike.
 *
 * Each hop is what a forwarder does: its own validator's arc= result goes
 * into its Authentication-Results, the list changes the message, then the
 * hop's own sealer seals.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PreparedSealer } from '../src/arc/seal.js';
import { verifyArc } from '../src/arc/verify.js';
import { formatKeyRecord, parsePrivateKey, signMessage, type SigningKey } from '../src/dkim/index.js';
import { createKeyLookup } from '../src/dns/resolver.js';
import { editHeader, listChanges, seal, withResults } from './helpers/arc.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { peerArcResults, peerSeal, PEERS, type Peer } from './helpers/arc-peers.js';
import { testKey } from './helpers/test-keys.js';

type Impl = 'ours' | Peer;
const IMPLS: readonly Impl[] = ['ours', 'dkimpy', 'maildkim', 'mailauth'];
/** Each implementation seals as a domain of its own, with its own key. */
const SEALER_DOMAIN: Record<Impl, string> = { ours: 'lists.example.org', dkimpy: 'py.example.net', maildkim: 'pl.example.net', mailauth: 'js.example.net' };

let dir: string;
let dns: TestDns;
let n = 0;
const keys = {} as Record<Impl | 'author', { file: string; key: SigningKey }>;
let ourSealer: PreparedSealer;
let lookup: ReturnType<typeof createKeyLookup>;

const ORIGINAL = Buffer.from(
  'From: Alice <alice@example.com>\r\nTo: list@lists.example.org\r\nSubject: Plans for Friday\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <arc-1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, list.\r\nSee you on Friday.\r\n',
  'latin1',
);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-arc-interop-'));
  const records = new Map<string, string[]>();
  for (const who of ['author', ...IMPLS] as const) {
    const { pem } = testKey('rsa-2048');
    const parsed = parsePrivateKey(pem);
    assert.ok(parsed.ok);
    const file = join(dir, `${who}.test-key.pem`);
    writeFileSync(file, pem, { mode: 0o600 });
    keys[who] = { file, key: parsed.key };
    records.set(who === 'author' ? 'sel._domainkey.example.com' : `arc._domainkey.${SEALER_DOMAIN[who]}`, [formatKeyRecord(parsed.key.key)]);
  }
  dns = await startDnsmasq(records, ['example.com', 'example.org', 'example.net']);
  lookup = createKeyLookup({ servers: [dns.server], timeoutMs: 3000 });
  ourSealer = PreparedSealer.prepare({ domain: SEALER_DOMAIN.ours, selector: 'arc', key: keys.ours.key, authservId: 'mx.lists.example.org' });
});

after(async () => {
  await dns?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function save(message: Buffer): string {
  const file = join(dir, `m${n++}.eml`);
  writeFileSync(file, message);
  return file;
}

/** The chain result of each implementation for each message, batched per process. */
async function validate(messages: readonly Buffer[], who: readonly Impl[] = IMPLS): Promise<Record<Impl, string>[]> {
  const files = messages.map(save);
  const [ours, peers] = await Promise.all([
    who.includes('ours') ? Promise.all(messages.map((m) => verifyArc(m, lookup, Math.floor(Date.now() / 1000)))) : Promise.resolve(undefined),
    peerArcResults(files, dns, PEERS.filter((p) => who.includes(p))),
  ]);
  return messages.map((_, k) => {
    const r = {} as Record<Impl, string>;
    if (ours) r.ours = ours[k]!.result;
    for (const p of PEERS) if (peers[p]) r[p] = peers[p][k]!;
    return r;
  });
}

/** One hop: the implementation validates, writes arc= into its A-R, the list changes the message, the implementation seals. */
async function hop(impl: Impl, message: Buffer, change?: (m: Buffer) => Buffer): Promise<Buffer> {
  const [found] = await validate([message], [impl]);
  const cv = found![impl];
  const srvid = `mx.${SEALER_DOMAIN[impl]}`;
  let m = withResults(message, srvid, `arc=${cv}; dkim=pass header.d=example.com`);
  if (change) m = change(m);
  if (impl === 'ours') return seal(m, ourSealer, Math.floor(Date.now() / 1000));
  const set = await peerSeal(impl, save(m), { domain: SEALER_DOMAIN[impl], selector: 'arc', keyFile: keys[impl].file, authservId: srvid }, dns, cv);
  assert.match(set.toString('latin1'), /^ARC-Seal: /, `${impl} sealed`);
  return Buffer.concat([set, m]);
}

function authorSigned(): Buffer {
  const fields = signMessage(ORIGINAL, [{ domain: 'example.com', selector: 'sel', key: keys.author.key, algorithm: 'rsa-sha256', canonicalization: { header: 'relaxed', body: 'relaxed' } }], Math.floor(Date.now() / 1000));
  return Buffer.concat([Buffer.from(fields.join(''), 'latin1'), ORIGINAL]);
}

/** Hops by `impls` in turn; the second hop is a list that tags the Subject and adds a footer before it seals. */
async function chainBy(impls: readonly Impl[]): Promise<Buffer> {
  let m = authorSigned();
  for (const [k, impl] of impls.entries()) m = await hop(impl, m, k === 1 ? (x) => listChanges(x) : undefined);
  return m;
}

const all = (r: Record<Impl, string>): string => IMPLS.map((i) => `${i}=${r[i]}`).join(' ');

describe('ARC interop: our seals in dkimpy, Mail::DKIM and mailauth', () => {
  it('one, two and three hops sealed by us (a list changing the message at the second) pass everywhere', async () => {
    const chains = [await chainBy(['ours']), await chainBy(['ours', 'ours']), await chainBy(['ours', 'ours', 'ours'])];
    for (const [k, r] of (await validate(chains)).entries()) {
      for (const impl of IMPLS) assert.equal(r[impl], 'pass', `${k + 1} hops: ${all(r)}`);
    }
  });
});

describe('ARC interop: chains sealed by dkimpy, Mail::DKIM and mailauth validate in ours with their cv', () => {
  for (const impl of ['dkimpy', 'maildkim', 'mailauth'] as const) {
    it(`${impl}: one, two and three hops`, async () => {
      const chains = [await chainBy([impl]), await chainBy([impl, impl]), await chainBy([impl, impl, impl])];
      for (const [k, r] of (await validate(chains)).entries()) {
        assert.equal(r[impl], 'pass', `${impl} validates its own ${k + 1}-hop chain: ${all(r)}`);
        assert.equal(r.ours, r[impl], `${k + 1} hops: ${all(r)}`);
      }
    });
  }

  it('a chain through all four (dkimpy, list by us, Mail::DKIM, mailauth) passes in all four', async () => {
    const m = await chainBy(['dkimpy', 'ours', 'maildkim', 'mailauth']);
    const [r] = await validate([m]);
    for (const impl of IMPLS) assert.equal(r![impl], 'pass', all(r!));
    const ours = await verifyArc(m, lookup, Math.floor(Date.now() / 1000));
    assert.equal(ours.instance, 4);
    // The list changed the message at hop 2: hop 1's AMS no longer verifies.
    assert.equal(ours.oldestPass, 2);
  });
});

describe('ARC interop: tampering and broken chains fail in all four', () => {
  it('a changed signed header, a changed body, a changed older AAR', async () => {
    for (const sealers of [['ours', 'ours', 'ours'], ['dkimpy', 'maildkim', 'mailauth']] as const) {
      const m = await chainBy(sealers);
      const damaged = [
        editHeader(m, /^Subject: \[list\] Plans/m, 'Subject: [list] Plans!'),
        Buffer.concat([m, Buffer.from('P.S. added later\r\n')]),
        editHeader(m, /^(ARC-Authentication-Results: i=1;[^]*?arc=)none/m, '$1pass'),
      ];
      for (const [k, r] of (await validate(damaged)).entries()) {
        for (const impl of IMPLS) assert.equal(r[impl], 'fail', `${sealers.join('>')} damage ${k}: ${all(r)}`);
      }
    }
  });

  it('gaps, duplicates, i=51, a cv=fail in the middle, a missing AMS, an AAR without i=', async () => {
    const m = await chainBy(['ours', 'ours', 'ours']);
    const fields = (x: Buffer): string[] => x.toString('latin1', 0, x.indexOf('\r\n\r\n') + 2).split(/\r\n(?![ \t])/).filter(Boolean).map((f) => `${f}\r\n`);
    const body = m.subarray(m.indexOf('\r\n\r\n') + 2);
    const rebuild = (fs: string[]): Buffer => Buffer.concat([Buffer.from(fs.join(''), 'latin1'), body]);
    const broken = [
      rebuild(fields(m).filter((f) => !/^ARC-[A-Za-z-]+: i=2;/.test(f))),
      rebuild([fields(m).find((f) => f.startsWith('ARC-Message-Signature: i=3;'))!, ...fields(m)]),
      editHeader(m, /^ARC-Seal: i=3;/m, 'ARC-Seal: i=51;'),
      editHeader(m, /^(ARC-Seal: i=2; cv=)pass/m, '$1fail'),
      rebuild(fields(m).filter((f) => !f.startsWith('ARC-Message-Signature: i=1;'))),
      editHeader(m, /^ARC-Authentication-Results: i=2; /m, 'ARC-Authentication-Results: '),
    ];
    for (const [k, r] of (await validate(broken)).entries()) {
      for (const impl of IMPLS) assert.equal(r[impl], 'fail', `case ${k}: ${all(r)}`);
    }
  });
});
