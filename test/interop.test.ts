/**
 * Interop with the independent implementations, for real: every signature we
 * make verifies with Mail::DKIM, dkimpy and OpenDKIM, and every signature they
 * make verifies with ours, with keys served by a real DNS server (dnsmasq) on
 * loopback. Debian 12's Mail::DKIM has no ed25519, so ed25519 goes to dkimpy
 * and OpenDKIM only.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatKeyRecord, parsePrivateKey, signMessage, verifyMessage, type SigningKey } from '../src/dkim/index.js';
import { createKeyLookup } from '../src/dns/resolver.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { MESSAGES } from './helpers/messages.js';
import * as peers from './helpers/peers.js';
import { testKey } from './helpers/test-keys.js';

const DOMAIN = 'example.com';
const HEADER_LISTS: Record<string, string[] | undefined> = {
  default: undefined,
  minimal: ['From'],
  modifiers: ['From', 'Subject*', 'To+', 'Date?', 'Received+', 'Comments*', 'X-Absent'],
};
const CANONS = ['relaxed/relaxed', 'simple/simple', 'relaxed/simple', 'simple/relaxed'] as const;

let dir: string;
let dns: TestDns;
let keysFile: string;
const keys: Record<'rsa' | 'ed25519', { file: string; key: SigningKey; selector: string }> = {} as never;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-interop-'));
  const records = new Map<string, string[]>();
  const testKeys: string[] = [];
  for (const [kind, selector] of [['rsa', 'sel'], ['ed25519', 'ed']] as const) {
    const { pem } = testKey(kind === 'rsa' ? 'rsa-2048' : 'ed25519');
    const file = join(dir, `${selector}.test-key.pem`);
    writeFileSync(file, pem, { mode: 0o600 });
    const parsed = parsePrivateKey(pem);
    assert.ok(parsed.ok);
    keys[kind] = { file, key: parsed.key, selector };
    const record = formatKeyRecord(parsed.key.key);
    records.set(`${selector}._domainkey.${DOMAIN}`, [record]);
    testKeys.push(`${selector}._domainkey.${DOMAIN} ${record}`);
  }
  keysFile = join(dir, 'test-public-keys.txt');
  writeFileSync(keysFile, `${testKeys.join('\n')}\n`);
  dns = await startDnsmasq(records, [DOMAIN]);
});

after(async () => {
  await dns?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Signed {
  readonly file: string;
  readonly label: string;
  readonly algorithm: 'rsa' | 'ed25519';
}

function ourSignatures(): Signed[] {
  const out: Signed[] = [];
  let n = 0;
  for (const [name, text] of Object.entries(MESSAGES)) {
    const message = Buffer.from(text, 'latin1');
    for (const [listName, headers] of Object.entries(HEADER_LISTS)) {
      for (const canon of CANONS) {
        for (const algorithm of ['rsa', 'ed25519'] as const) {
          const [header, body] = canon.split('/') as ['simple' | 'relaxed', 'simple' | 'relaxed'];
          const k = keys[algorithm];
          const fields = signMessage(
            message,
            [{ domain: DOMAIN, selector: k.selector, key: k.key, algorithm: algorithm === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256', canonicalization: { header, body }, ...(headers ? { headers } : {}) }],
            Math.floor(Date.now() / 1000),
          );
          const file = join(dir, `ours-${n++}.eml`);
          writeFileSync(file, Buffer.concat([Buffer.from(fields.join(''), 'latin1'), message]));
          out.push({ file, label: `${name} / ${listName} / ${canon} / ${algorithm}`, algorithm });
        }
      }
    }
  }
  return out;
}

/**
 * OpenDKIM defects, each confirmed against the other verifiers (see the
 * tests): its `simple` header canonicalization mishandles a field folded
 * straight after the colon (TESTING-NOTES; DKIM-PITFALLS 3), and its own
 * ed25519 signatures with `simple` headers verify nowhere, not even in
 * OpenDKIM. Listed exactly, so any other disagreement fails the suite and a
 * fixed OpenDKIM shows up as a failure to revisit.
 */
const OPENDKIM_FOLDED_SIMPLE = (label: string): boolean => /^folded headers \/ default \/ simple\//.test(label);

function assertAllPass(signed: readonly Signed[], results: readonly peers.PeerResult[], tool: string, expectFail: (label: string) => boolean = () => false): void {
  const byFile = new Map<string, peers.PeerResult[]>();
  for (const r of results) byFile.set(r.file, [...(byFile.get(r.file) ?? []), r]);
  const failures = signed
    .filter((s) => byFile.get(s.file)?.map((r) => r.result).join() !== (expectFail(s.label) ? 'fail' : 'pass'))
    .map((s) => `${s.label}: ${byFile.get(s.file)?.map((r) => `${r.result} (${r.detail})`).join('; ') ?? 'no result'}`);
  assert.deepEqual(failures, [], `${tool} did not pass ${failures.length} of ${signed.length}`);
}

describe('our signatures verify elsewhere', () => {
  let signed: Signed[];
  before(() => {
    signed = ourSignatures();
  });

  it('with Mail::DKIM (rsa-sha256; Debian 12 has no ed25519)', async () => {
    const rsa = signed.filter((s) => s.algorithm === 'rsa');
    assertAllPass(rsa, await peers.mailDkimVerify(rsa.map((s) => s.file), dns.port), 'Mail::DKIM');
  });

  it('with dkimpy (rsa-sha256 and ed25519-sha256)', async () => {
    assertAllPass(signed, await peers.dkimpyVerify(signed.map((s) => s.file), dns.port), 'dkimpy');
  });

  it('with OpenDKIM (rsa-sha256 and ed25519-sha256)', async () => {
    const results: peers.PeerResult[] = [];
    for (const s of signed) results.push(...(await peers.openDkimVerify(s.file, dir, keysFile)));
    assertAllPass(signed, results, 'OpenDKIM', OPENDKIM_FOLDED_SIMPLE);
    // The same files pass with both other verifiers (asserted above for all files).
    assert.ok(signed.some((s) => OPENDKIM_FOLDED_SIMPLE(s.label)));
  });

  it('and a tampered copy fails with all three', async () => {
    const s = signed.find((x) => x.algorithm === 'rsa')!;
    const tampered = join(dir, 'tampered.eml');
    const { readFileSync } = await import('node:fs');
    writeFileSync(tampered, readFileSync(s.file, 'latin1').replace('Subject: Test message', 'Subject: Test massage'), 'latin1');
    const verdicts = [
      ...(await peers.mailDkimVerify([tampered], dns.port)),
      ...(await peers.dkimpyVerify([tampered], dns.port)),
      ...(await peers.openDkimVerify(tampered, dir, keysFile)),
    ].map((r) => r.result);
    assert.deepEqual(verdicts, ['fail', 'fail', 'fail']);
  });
});

describe('their signatures verify with ours (keys from dnsmasq)', () => {
  const lookup = (): ReturnType<typeof createKeyLookup> => createKeyLookup({ servers: [dns.server], timeoutMs: 3000 });

  /**
   * Signs every message shape with a peer and verifies with ours. Where the
   * peer is known to produce a broken signature (`brokenPeer`), we must say
   * `fail`, and so must dkimpy: a second opinion, so the exception is earned.
   */
  async function check(tool: string, sign: (file: string) => Promise<string>, brokenPeer: (name: string) => boolean = () => false): Promise<void> {
    const failures: string[] = [];
    let count = 0;
    for (const [name, text] of Object.entries(MESSAGES)) {
      const file = join(dir, `theirs-${tool.replace(/\W/g, '')}-${count++}.eml`);
      writeFileSync(file, text, 'latin1');
      const field = await sign(file);
      assert.match(field, /^DKIM-Signature:/i, `${tool} produced no signature for ${name}`);
      const signed = Buffer.concat([Buffer.from(field, 'latin1'), Buffer.from(text, 'latin1')]);
      const outcomes = await verifyMessage(signed, lookup(), Math.floor(Date.now() / 1000));
      const got = outcomes.map((o) => ('reason' in o ? `${o.result} (${o.reason} ${o.detail ?? ''})` : o.result)).join();
      const expected = brokenPeer(name) ? 'fail (signature did not verify )' : 'pass';
      if (got !== expected) failures.push(`${name}: ${got}, expected ${expected}`);
      if (brokenPeer(name)) {
        writeFileSync(file, signed);
        const second = await peers.dkimpyVerify([file], dns.port);
        if (second.map((r) => r.result).join() !== 'fail') failures.push(`${name}: dkimpy says ${second.map((r) => r.result).join()}, we say fail`);
      }
    }
    assert.deepEqual(failures, [], tool);
  }

  for (const canon of ['relaxed', 'simple'] as const) {
    it(`Mail::DKIM rsa-sha256 ${canon}`, () => check(`maildkim-${canon}`, (f) => peers.mailDkimSign(f, keys.rsa.file, DOMAIN, 'sel', canon)));
    for (const algorithm of ['rsa-sha256', 'ed25519-sha256'] as const) {
      const k = algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519';
      it(`dkimpy ${algorithm} ${canon}/${canon}`, () =>
        check(`dkimpy-${algorithm}-${canon}`, (f) => peers.dkimpySign(f, keys[k].file, DOMAIN, keys[k].selector, `${canon}/${canon}`, algorithm)));
      const openDkimBroken = (name: string): boolean => canon === 'simple' && (algorithm === 'ed25519-sha256' || name === 'folded headers');
      it(`OpenDKIM ${algorithm} ${canon}/${canon}`, () =>
        check(`opendkim-${algorithm}-${canon}`, (f) => peers.openDkimSign(f, dir, keys[k].file, DOMAIN, keys[k].selector, `${canon}/${canon}`), openDkimBroken));
    }
  }
});
