/**
 * Signing policy: which signatures a message gets. DNS is not the subject
 * here: the DNS-checked policies read an in-process zone, and only the
 * timeout case asks a real (silent) DNS server on loopback. The real
 * resolver against dnsmasq is tested where DNS is the subject (interop,
 * the proxies).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { formatKeyRecord } from '../src/dkim/index.js';
import { loadConfig } from '../src/config/load.js';
import type { ProxyConfig } from '../src/config/types.js';
import { createKeyLookup } from '../src/dns/resolver.js';
import { planSignatures, SelectorMemory, type SigningPlan } from '../src/policy/signing.js';
import { makeConfigDir, type ConfigDir } from './helpers/config-dir.js';
import { startSilentDns, type TestDns } from './helpers/dns-server.js';
import { zoneLookup } from './helpers/fixtures.js';
import { testKey } from './helpers/test-keys.js';

const TOML = `
[signing]
additional_signatures = ["esp", "fallback"]

[domain."exact.example"]
selector = "s1"

[domain."parent.example"]
selector = "s1"
subdomains = true

[domain."flat.example"]
selector = "s1"
subdomains = false
additional_signatures = []

[domain."published.example"]
selector = "s1"
policy = "SignOnlyIfInDNS"

[domain."strict.example"]
selector = "s1"
policy = "TempFailIfNotInDNS"

[domain."absent.example"]
selector = "s1"
policy = "SignOnlyIfInDNS"

[domain."absent-strict.example"]
selector = "s1"
policy = "TempFailIfNotInDNS"

[domain."mismatch.example"]
selector = "s1"
policy = "SignOnlyIfInDNS"

[domain."mismatch-strict.example"]
selector = "s1"
policy = "TempFailIfNotInDNS"

[signature."esp"]
domain = "esp.example"
selector = "esp1"
policy = "Always"

[signature."fallback"]
domain = "fallback.example"
selector = "fb1"
algorithm = "ed25519-sha256"
policy = "OnlyIfMissingDomainBlock"
`;

const DOMAINS = ['exact.example', 'parent.example', 'flat.example', 'published.example', 'strict.example', 'absent.example', 'absent-strict.example', 'mismatch.example', 'mismatch-strict.example'];

let dir: ConfigDir;
let config: ProxyConfig;
let zone: Map<string, string[]>;
let silent: TestDns;

before(async () => {
  dir = makeConfigDir(TOML, [
    ...DOMAINS.map((domain) => ({ domain, selector: 's1' })),
    { domain: 'esp.example', selector: 'esp1' },
    { domain: 'fallback.example', selector: 'fb1', kind: 'ed25519' as const },
  ]);
  const r = await loadConfig(dir.file, { cwd: dir.dir, env: {} });
  assert.ok(r.ok, r.ok ? '' : r.issues.map((i) => i.message).join('\n'));
  config = r.config;
  // Published: the right keys for published/strict, someone else's key for the mismatch domains, nothing for absent.
  const stranger = formatKeyRecord(testKey('rsa-2048').key);
  zone = new Map<string, string[]>();
  for (const d of ['published.example', 'strict.example']) zone.set(`s1._domainkey.${d}`, dir.records.get(`s1._domainkey.${d}`)!);
  for (const d of ['mismatch.example', 'mismatch-strict.example']) zone.set(`s1._domainkey.${d}`, [stranger]);
  silent = await startSilentDns();
});

after(async () => {
  await silent?.stop();
  if (dir) rmSync(dir.dir, { recursive: true, force: true });
});

const lookup = () => zoneLookup(zone);
const summary = (p: SigningPlan): string => (p.kind === 'sign' ? p.signers.map((s) => `${s.domain}/${s.selector}`).join(' + ') : `${p.kind}: ${p.reason}`);

describe('signing policy', () => {
  it('matches a domain block exactly, and adds the Always signature', async () => {
    assert.equal(summary(await planSignatures(config.signing, 'exact.example', lookup())), 'exact.example/s1 + esp.example/esp1');
    // A subdomain of a block without `subdomains` is not covered by it.
    assert.equal(summary(await planSignatures(config.signing, 'news.exact.example', lookup())), 'esp.example/esp1 + fallback.example/fb1');
  });

  it('signs subdomains as the parent when the block says so (Momentum base_domain)', async () => {
    assert.equal(summary(await planSignatures(config.signing, 'news.parent.example', lookup())), 'parent.example/s1 + esp.example/esp1');
    assert.equal(summary(await planSignatures(config.signing, 'a.b.parent.example', lookup())), 'parent.example/s1 + esp.example/esp1');
    assert.equal(summary(await planSignatures(config.signing, 'xparent.example', lookup())), 'esp.example/esp1 + fallback.example/fb1');
  });

  it('uses OnlyIfMissingDomainBlock signatures only when no block signs', async () => {
    assert.equal(summary(await planSignatures(config.signing, 'unknown.example', lookup())), 'esp.example/esp1 + fallback.example/fb1');
    assert.equal(summary(await planSignatures(config.signing, 'flat.example', lookup())), 'flat.example/s1');
  });

  it('SignOnlyIfInDNS signs when the published key matches, and falls back otherwise', async () => {
    assert.equal(summary(await planSignatures(config.signing, 'published.example', lookup())), 'published.example/s1 + esp.example/esp1');
    assert.equal(summary(await planSignatures(config.signing, 'absent.example', lookup())), 'esp.example/esp1 + fallback.example/fb1');
    const mismatch = await planSignatures(config.signing, 'mismatch.example', lookup());
    assert.equal(summary(mismatch), 'esp.example/esp1 + fallback.example/fb1');
    assert.ok(mismatch.kind === 'sign' && mismatch.notes.some((n) => /mismatch at s1\._domainkey\.mismatch\.example/.test(n)));
  });

  it('TempFailIfNotInDNS signs when published and matching, and asks for a retry otherwise', async () => {
    assert.equal(summary(await planSignatures(config.signing, 'strict.example', lookup())), 'strict.example/s1 + esp.example/esp1');
    assert.match(summary(await planSignatures(config.signing, 'absent-strict.example', lookup())), /^tempfail: absent-strict\.example: key not published at s1\._domainkey\.absent-strict\.example/);
    assert.match(summary(await planSignatures(config.signing, 'mismatch-strict.example', lookup())), /^tempfail: mismatch-strict\.example: a different key published at .*is not the one in/);
  });

  it('a DNS server that does not answer: TempFailIfNotInDNS retries, SignOnlyIfInDNS falls back, both within the timeout', async () => {
    const dead = createKeyLookup({ servers: [silent.server], timeoutMs: 300 });
    const started = Date.now();
    assert.match(summary(await planSignatures(config.signing, 'strict.example', dead)), /^tempfail: strict\.example: DNS error/);
    assert.equal(summary(await planSignatures(config.signing, 'published.example', dead)), 'esp.example/esp1 + fallback.example/fb1');
    assert.ok(Date.now() - started < 3000, 'bounded by the DNS timeout');
  });

  it('no author domain: only the signatures that do not need one', async () => {
    assert.equal(summary(await planSignatures(config.signing, null, lookup())), 'esp.example/esp1 + fallback.example/fb1');
  });

  it('single_signature keeps only the first signature', async () => {
    const d = makeConfigDir('[signing]\nsingle_signature = true\nadditional_signatures = ["esp"]\n[domain."exact.example"]\nselector = "s1"\n[signature."esp"]\ndomain = "esp.example"\nselector = "esp1"\n', [
      { domain: 'exact.example', selector: 's1' },
      { domain: 'esp.example', selector: 'esp1' },
    ]);
    try {
      const r = await loadConfig(d.file, { cwd: d.dir, env: {} });
      assert.ok(r.ok);
      assert.equal(summary(await planSignatures(r.config.signing, 'exact.example', lookup())), 'exact.example/s1');
    } finally {
      rmSync(d.dir, { recursive: true, force: true });
    }
  });

  it('with no rule at all, the plan is unsigned with the reason', async () => {
    const d = makeConfigDir('[domain."exact.example"]\nselector = "s1"\n', [{ domain: 'exact.example', selector: 's1' }]);
    try {
      const r = await loadConfig(d.file, { cwd: d.dir, env: {} });
      assert.ok(r.ok);
      assert.equal(summary(await planSignatures(r.config.signing, 'other.example', lookup())), 'unsigned: no [domain] block for other.example');
    } finally {
      rmSync(d.dir, { recursive: true, force: true });
    }
  });
});

describe('key rotation: selectors in order', () => {
  const ROTATION = `
[domain."rotate.example"]
selectors = ["new", "old"]
policy = "TempFailIfNotInDNS"

[domain."always.example"]
selectors = ["new", "old"]

[domain."only.example"]
selectors = ["new", "old"]
policy = "SignOnlyIfInDNS"

[signature."ed"]
domain = "rotate.example"
algorithm = "ed25519-sha256"
selectors = ["ed2", "ed1"]
`;
  let rdir: ConfigDir;
  let rconfig: ProxyConfig;
  before(async () => {
    rdir = makeConfigDir(`[signing]\nadditional_signatures = ["ed"]\n${ROTATION}`, [
      ...['rotate.example', 'always.example', 'only.example'].flatMap((domain) => [{ domain, selector: 'new' }, { domain, selector: 'old' }]),
      { domain: 'rotate.example', selector: 'ed2', kind: 'ed25519' as const },
      { domain: 'rotate.example', selector: 'ed1', kind: 'ed25519' as const },
    ]);
    const r = await loadConfig(rdir.file, { cwd: rdir.dir, env: {} });
    assert.ok(r.ok, r.ok ? '' : r.issues.map((i) => i.message).join('\n'));
    rconfig = r.config;
  });
  after(() => rmSync(rdir.dir, { recursive: true, force: true }));
  const records = (names: string[], extra: [string, string[]][] = []) => zoneLookup(new Map([...names.map((n) => [n, rdir.records.get(n)!] as [string, string[]]), ...extra]));

  it('each selector is a signer with its own key; the first published one that matches signs, and the two algorithms rotate apart', async () => {
    const block = rconfig.signing.domains.get('rotate.example')!;
    assert.deepEqual(block.candidates.map((c) => c.selector), ['new', 'old']);
    assert.notEqual(block.candidates[0]!.key.key, block.candidates[1]!.key.key);
    const oldOnly = records(['old._domainkey.rotate.example', 'ed2._domainkey.rotate.example']);
    assert.equal(summary(await planSignatures(rconfig.signing, 'rotate.example', oldOnly)), 'rotate.example/old + rotate.example/ed2');
    const both = records(['new._domainkey.rotate.example', 'old._domainkey.rotate.example', 'ed1._domainkey.rotate.example']);
    assert.equal(summary(await planSignatures(rconfig.signing, 'rotate.example', both)), 'rotate.example/new + rotate.example/ed1');
  });

  it('a record with the wrong key never takes over', async () => {
    const wrong = records(['old._domainkey.rotate.example'], [['new._domainkey.rotate.example', [formatKeyRecord(testKey('rsa-2048').key)]]]);
    assert.match(summary(await planSignatures(rconfig.signing, 'rotate.example', wrong)), /^rotate\.example\/old/);
  });

  it('while none is published the policy decides: SignAlways the first, SignOnlyIfInDNS falls back, TempFailIfNotInDNS 451', async () => {
    const none = records([]);
    assert.equal(summary(await planSignatures(rconfig.signing, 'always.example', none)), 'always.example/new + rotate.example/ed2');
    assert.equal(summary(await planSignatures(rconfig.signing, 'only.example', none)), 'rotate.example/ed2');
    const strict = await planSignatures(rconfig.signing, 'rotate.example', none);
    assert.equal(strict.kind, 'tempfail');
    assert.match(summary(strict), /key not published at new\._domainkey\.rotate\.example.*key not published at old\._domainkey\.rotate\.example/);
  });

  it('a DNS outage under TempFailIfNotInDNS is 451, never an unconfirmed selector', async () => {
    const dead = createKeyLookup({ servers: [silent.server], timeoutMs: 300 });
    const plan = await planSignatures(rconfig.signing, 'rotate.example', dead);
    assert.equal(plan.kind, 'tempfail');
    assert.match(summary(plan), /DNS error/);
  });

  it('a change of selector is told once', async () => {
    const memory = new SelectorMemory();
    const told: string[] = [];
    const tell = (s: { block: string; from: string; to: string }) => told.push(`${s.block}: ${s.from} -> ${s.to}`);
    const oldOnly = records(['old._domainkey.rotate.example', 'ed1._domainkey.rotate.example']);
    const both = records(['new._domainkey.rotate.example', 'old._domainkey.rotate.example', 'ed1._domainkey.rotate.example']);
    for (const l of [oldOnly, oldOnly, both, both, both]) await planSignatures(rconfig.signing, 'rotate.example', l, memory, tell);
    assert.deepEqual(told, ['domain.rotate.example: old -> new']);
  });

  it('[signing] selectors are every block\'s default, and a block\'s own selector replaces them', async () => {
    const d = makeConfigDir('[signing]\nselectors = ["b2", "b1"]\n[domain."x.example"]\n[domain."y.example"]\nselector = "only"\n', [
      { domain: 'x.example', selector: 'b2' },
      { domain: 'x.example', selector: 'b1' },
      { domain: 'y.example', selector: 'only' },
    ]);
    const r = await loadConfig(d.file, { cwd: d.dir, env: {} });
    rmSync(d.dir, { recursive: true, force: true });
    assert.ok(r.ok, r.ok ? '' : r.issues.map((i) => i.message).join('\n'));
    assert.deepEqual(r.config.signing.domains.get('x.example')!.candidates.map((c) => c.selector), ['b2', 'b1']);
    assert.deepEqual(r.config.signing.domains.get('y.example')!.candidates.map((c) => c.selector), ['only']);
  });

  it('selector and selectors together, an empty list and a repeated selector are config errors', async () => {
    for (const [text, message] of [
      ['selector = "a"\nselectors = ["b"]', /either selector or selectors/],
      ['selectors = []', /at least one selector/],
      ['selectors = ["a", "a"]', /lists a selector twice/],
      ['selectors = ["bad selector"]', /DNS labels/],
    ] as const) {
      const d = makeConfigDir(`[domain."x.example"]\n${text}\n`);
      const r = await loadConfig(d.file, { cwd: d.dir, env: {} });
      rmSync(d.dir, { recursive: true, force: true });
      assert.ok(!r.ok);
      assert.match(r.issues.map((i) => `${i.key}: ${i.message}`).join('\n'), message);
    }
  });
});
