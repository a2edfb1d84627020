/**
 * `dkim-proxy explain --original`: each transformation that breaks DKIM in
 * practice, applied to messages signed by us and by Mail::DKIM, dkimpy and
 * OpenDKIM, named by its cause word and its change kind. (Postfix's own
 * 8BITMIME downgrade and line breaking are in test/postfix-transit.test.ts.)
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { formatKeyRecord, hashBody, parsePrivateKey, signMessage, type SigningKey } from '../src/dkim/index.js';
import { canonicalBodyText } from '../src/dkim/changes.js';
import { explainMessage } from '../src/dkim/explain.js';
import { cli } from './helpers/cli.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { zoneLookup } from './helpers/fixtures.js';
import { asHeaderField, dkimpySign, mailDkimSign, openDkimSign } from './helpers/peers.js';
import { testKey } from './helpers/test-keys.js';

const D = 'example.com';
const PLAIN = 'From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: Lunch\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <original@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nSee you at noon.\r\nBring the notes.\r\n';
const BARE_CR = PLAIN.replace('Bring the notes.', 'progress 10%\r20%\r30%');

type Signer = 'ours' | 'Mail::DKIM' | 'dkimpy' | 'OpenDKIM';
const SIGNERS: readonly Signer[] = ['ours', 'Mail::DKIM', 'dkimpy', 'OpenDKIM'];

interface Transformation {
  readonly name: string;
  readonly base: string;
  readonly canon: 'relaxed' | 'simple';
  readonly apply: (signed: string) => string;
  /** Who signs the base message (default: all four). */
  readonly signers?: readonly Signer[];
  /** The cause and the changes explain must report, by signer (ours over-signs; the others do not). */
  readonly expect: (signer: Signer) => { cause: string; changes: [kind: string, where: RegExp][] };
}

const T: readonly Transformation[] = [
  { name: 'a list footer', base: PLAIN, canon: 'relaxed', apply: (m) => `${m}-- \r\nThe list footer\r\n`, expect: () => ({ cause: 'body-changed', changes: [['body-appended', /^body line 3$/]] }) },
  { name: 'the body cut short', base: PLAIN, canon: 'relaxed', apply: (m) => m.replace('Bring the notes.\r\n', ''), expect: () => ({ cause: 'body-changed', changes: [['body-truncated', /^body line 2$/]] }) },
  { name: 'a word changed', base: PLAIN, canon: 'relaxed', apply: (m) => m.replace('See you at noon.', 'See you at one.'), expect: () => ({ cause: 'body-changed', changes: [['body-modified', /^body line 1$/]] }) },
  { name: 'a subject tag', base: PLAIN, canon: 'relaxed', apply: (m) => m.replace('Subject: Lunch', 'Subject: [list] Lunch'), expect: () => ({ cause: 'header-changed', changes: [['header-modified', /^Subject$/]] }) },
  { name: 'Date removed', base: PLAIN, canon: 'relaxed', apply: (m) => m.replace(/Date: [^\r]*\r\n/, ''), expect: () => ({ cause: 'header-changed', changes: [['header-removed', /^Date$/]] }) },
  {
    name: 'Reply-To added',
    base: PLAIN,
    canon: 'relaxed',
    apply: (m) => m.replace('To: bob', 'Reply-To: list@example.org\r\nTo: bob'),
    // Only an over-signed name guards absence: the others never signed Reply-To, so nothing they signed changed.
    expect: (s) => (s === 'ours' ? { cause: 'header-changed', changes: [['header-added', /^Reply-To$/]] } : { cause: 'ok', changes: [] }),
  },
  { name: 'To refolded (simple)', base: PLAIN, canon: 'simple', apply: (m) => m.replace('\r\nTo: bob', '\r\nTo:\r\n bob'), expect: () => ({ cause: 'header-changed', changes: [['header-refolded', /^To$/]] }) },
  { name: 'To refolded (relaxed)', base: PLAIN, canon: 'relaxed', apply: (m) => m.replace('\r\nTo: bob', '\r\nTo:\r\n bob'), expect: () => ({ cause: 'ok', changes: [] }) },
  { name: 'trailing spaces (simple)', base: PLAIN, canon: 'simple', apply: (m) => m.replace('noon.\r\n', 'noon.   \r\n'), expect: () => ({ cause: 'body-changed', changes: [['whitespace-changed', /^body line 1$/]] }) },
  { name: 'trailing spaces (relaxed)', base: PLAIN, canon: 'relaxed', apply: (m) => m.replace('noon.\r\n', 'noon.   \r\n'), expect: () => ({ cause: 'ok', changes: [] }) },
  // OpenDKIM's relaxed body canonicalization of a bare CR inside a line differs from RFC 6376 and from Mail::DKIM,
  // dkimpy and us (test/transport-encoding.test.ts shows it): its own signature of BARE_CR does not verify anywhere else.
  { name: 'bare CRs made line ends', base: BARE_CR, canon: 'relaxed', signers: ['ours', 'Mail::DKIM', 'dkimpy'], apply: (m) => m.replace('10%\r20%\r30%', '10%\r\n20%\r\n30%'), expect: () => ({ cause: 'body-changed', changes: [['line-endings', /^body line 2$/]] }) },
  { name: 'a Received field added (unsigned)', base: PLAIN, canon: 'relaxed', apply: (m) => `Received: from mx.example.net by mx.example.org; Tue, 1 Dec 2026 10:00:05 +0000\r\n${m}`, expect: () => ({ cause: 'ok', changes: [] }) },
];

let dir: string;
let key: SigningKey;
let keyFile: string;
const zone = new Map<string, string[]>();

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-explain-original-'));
  const { pem } = testKey('rsa-2048');
  const parsed = parsePrivateKey(pem);
  assert.ok(parsed.ok);
  key = parsed.key;
  keyFile = join(dir, 'sel.test-key.pem');
  writeFileSync(keyFile, pem, { mode: 0o600 });
  zone.set(`sel._domainkey.${D}`, [formatKeyRecord(key.key)]);
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const now = Math.floor(Date.now() / 1000);

/** `base` signed by `signer` with `canon`/`canon`: the whole message, as it left. */
async function signedBy(signer: Signer, base: string, canon: 'relaxed' | 'simple', n: number): Promise<string> {
  const file = join(dir, `base-${n}.eml`);
  writeFileSync(file, Buffer.from(base, 'latin1'));
  const pair = `${canon}/${canon}`;
  switch (signer) {
    case 'ours':
      return signMessage(Buffer.from(base, 'latin1'), [{ domain: D, selector: 'sel', key, algorithm: 'rsa-sha256', canonicalization: { header: canon, body: canon } }], now).join('') + base;
    case 'Mail::DKIM':
      return asHeaderField(await mailDkimSign(file, keyFile, D, 'sel', pair)) + base;
    case 'dkimpy':
      return asHeaderField(await dkimpySign(file, keyFile, D, 'sel', pair, 'rsa-sha256')) + base;
    case 'OpenDKIM':
      return asHeaderField(await openDkimSign(file, dir, keyFile, D, 'sel', pair)) + base;
  }
}

describe('explain --original: the cause word and the change kind, for each transformation and each signer', () => {
  it('names every transformation on signatures by us, Mail::DKIM, dkimpy and OpenDKIM', async () => {
    const lookup = zoneLookup(zone);
    const signedCache = new Map<string, string>();
    let n = 0;
    for (const t of T) {
      for (const signer of t.signers ?? SIGNERS) {
        const id = `${signer}|${t.base === PLAIN ? 'plain' : 'bare-cr'}|${t.canon}`;
        let sent = signedCache.get(id);
        if (sent === undefined) {
          sent = await signedBy(signer, t.base, t.canon, n++);
          signedCache.set(id, sent);
          const clean = await explainMessage(Buffer.from(sent, 'latin1'), lookup, now, Buffer.from(sent, 'latin1'));
          assert.deepEqual(clean.map((e) => [e.cause, e.changes]), [['ok', []]], `${id}: the message as sent`);
        }
        const arrived = Buffer.from(t.apply(sent), 'latin1');
        assert.notEqual(arrived.toString('latin1'), sent, `${t.name}: the transformation applies`);
        const [e, ...more] = await explainMessage(arrived, lookup, now, Buffer.from(sent, 'latin1'));
        assert.equal(more.length, 0);
        const want = t.expect(signer);
        const label = `${t.name}, signed by ${signer}`;
        assert.equal(e!.cause, want.cause, label);
        assert.deepEqual(e!.changes!.map((c) => c.kind), want.changes.map(([k]) => k), `${label}: ${JSON.stringify(e!.changes)}`);
        for (const [k, [, where]] of want.changes.entries()) assert.match(e!.changes![k]!.where, where, label);
        for (const c of e!.changes!) assert.ok(c.fix.length > 20, label);
      }
    }
  });

  it('a footer that l= covers: cause ok, change body-appended, and it says l= covered it', async () => {
    const sent = signMessage(Buffer.from(PLAIN, 'latin1'), [{ domain: D, selector: 'sel', key, algorithm: 'rsa-sha256', canonicalization: { header: 'relaxed', body: 'relaxed' }, bodyLength: true }], now).join('') + PLAIN;
    const [e] = await explainMessage(Buffer.from(`${sent}-- \r\nfooter\r\n`, 'latin1'), zoneLookup(zone), now, Buffer.from(sent, 'latin1'));
    assert.equal(e!.cause, 'ok');
    assert.deepEqual(e!.changes!.map((c) => c.kind), ['body-appended']);
    assert.match(e!.changes![0]!.where, /l=\d+ covers the signed part/);
    assert.equal(e!.changes![0]!.now, '--\r\nfooter\r\n');
  });

  it('without --original there are no changes to report (null), only the cause', async () => {
    const sent = signMessage(Buffer.from(PLAIN, 'latin1'), [{ domain: D, selector: 'sel', key, algorithm: 'rsa-sha256', canonicalization: { header: 'relaxed', body: 'relaxed' } }], now).join('') + PLAIN;
    const [e] = await explainMessage(Buffer.from(sent.replace('noon', 'one'), 'latin1'), zoneLookup(zone), now);
    assert.equal(e!.cause, 'body-changed');
    assert.equal(e!.changes, null);
  });

  it('compares what the verifier hashed: the canonical body text, hashed as it is, is the engine\'s body hash', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', ' ', '\t', '\r\n', 'b c', '\r\n\r\n', '\r', 'word  \t'.repeat(60)), { maxLength: 30 }), fc.constantFrom('relaxed' as const, 'simple' as const), (pieces, canon) => {
        const body = Buffer.from(pieces.join(''), 'latin1');
        const text = canonicalBodyText(body, canon);
        assert.deepEqual(createHash('sha256').update(Buffer.from(text, 'latin1')).digest(), hashBody(body, canon, 'sha256').hash);
        // And the canonical form is a fixed point: canonicalizing it again changes nothing.
        assert.equal(canonicalBodyText(Buffer.from(text, 'latin1'), canon), text);
      }),
      { numRuns: 500 },
    );
  });
});

describe('dkim-proxy explain --original, the command', () => {
  let dns: TestDns;
  before(async () => {
    dns = await startDnsmasq(zone, [D]);
  });
  after(async () => dns?.stop());

  it('prints the changes aligned, with --json the same fields, and exits 1', async () => {
    const sent = signMessage(Buffer.from(PLAIN, 'latin1'), [{ domain: D, selector: 'sel', key, algorithm: 'rsa-sha256', canonicalization: { header: 'relaxed', body: 'relaxed' } }], now).join('') + PLAIN;
    const sentFile = join(dir, 'sent.eml');
    // The sender's copy, as a mail client stores it: LF line ends.
    writeFileSync(sentFile, sent.replace(/\r\n/g, '\n'));
    const arrived = sent.replace('Subject: Lunch', 'Subject: [list] Lunch') + '-- \r\nThe list footer\r\n';
    const json = await cli(['explain', '--original', sentFile, '--dns-server', dns.server, '--json'], arrived);
    assert.equal(json.code, 1, json.stderr);
    const [row] = JSON.parse(json.stdout) as { cause: string; changes: { kind: string; where: string; signed: string | null; now: string | null; fix: string }[] }[];
    assert.equal(row!.cause, 'body-changed');
    assert.deepEqual(row!.changes.map((c) => [c.kind, c.where]), [['body-appended', 'body line 3'], ['header-modified', 'Subject']]);
    assert.deepEqual([row!.changes[1]!.signed, row!.changes[1]!.now], ['subject:Lunch', 'subject:[list] Lunch']);
    const text = await cli(['explain', '--original', sentFile, '--dns-server', dns.server], arrived);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /since it was sent:\n +body-appended +body line 3\n +now: +--\\r\\nThe list footer\\r\\n\n +fix: Text was appended/);
    assert.match(text.stdout, /\n +header-modified +Subject\n +signed: subject:Lunch\n +now: +subject:\[list\] Lunch\n/);
  });
});
