/**
 * The configuration commands, run for real: check-config on the shipped
 * config and every example, dns-check against dnsmasq, and sign --config
 * checked by Mail::DKIM and dkimpy.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatKeyRecord } from '../src/dkim/index.js';
import { keyRefs } from '../src/config/load.js';
import { cli } from './helpers/cli.js';
import { makeConfigDir, type ConfigDir } from './helpers/config-dir.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { ROOT } from './helpers/fixtures.js';
import { MESSAGES } from './helpers/messages.js';
import { dkimpyVerify, mailDkimVerify } from './helpers/peers.js';
import { testKey } from './helpers/test-keys.js';

describe('check-config', () => {
  it('passes the shipped config/dkim-proxy.toml as it is', async () => {
    const r = await cli(['check-config']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^config\/dkim-proxy\.toml: OK$/m);
    assert.match(r.stdout, /^out: 127\.0\.0\.1:10027 -> 127\.0\.0\.1:10028 \(smtp; clients 127\.0\.0\.1\/32, ::1\/128\)$/m);
  });

  const examples = readdirSync(join(ROOT, 'config/examples')).filter((f) => f.endsWith('.toml'));
  it('has examples to check', () => assert.ok(examples.length >= 3));

  for (const example of examples) {
    it(`passes config/examples/${example} once its keys and spool exist`, async () => {
      const cwd = mkdtempSync(join(tmpdir(), 'dkim-proxy-example-'));
      // Absolute paths (the container's /etc/dkim-proxy and spool) are moved under the temp dir.
      const file = join(cwd, example);
      mkdirSync(join(cwd, 'spool'), { mode: 0o700 });
      const text = readFileSync(join(ROOT, 'config/examples', example), 'utf8');
      writeFileSync(file, text.replaceAll('"/etc/dkim-proxy/', `"${cwd}/etc/dkim-proxy/`).replaceAll('"/var/spool/dkim-proxy"', `"${cwd}/spool"`));
      // Learn which keys the example names, make them, then check for real.
      const dry = await keyRefs(file, { env: {} });
      assert.ok(dry.ok, dry.ok ? '' : dry.issues.map((i) => `${i.key}: ${i.message}`).join('\n'));
      try {
        const signers = dry.keys;
        for (const s of signers) {
          const path = resolve(cwd, s.keyFile);
          mkdirSync(join(path, '..'), { recursive: true });
          writeFileSync(path, testKey(s.algorithm === 'ed25519-sha256' ? 'ed25519' : 'rsa-2048').pem, { mode: 0o600 });
        }
        const r = await cli(['check-config', '--config', file], undefined, cwd);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /: OK\n/);
        for (const s of signers) assert.ok(r.stdout.includes(s.domain), `${s.domain} in the signing table`);
      } finally {
        rmSync(cwd, { recursive: true, force: true });
      }
    });
  }

  it('--json gives the signing table as data, and the errors with file, line and key', async () => {
    const ok = await cli(['check-config', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    const body = JSON.parse(ok.stdout) as Record<string, unknown>;
    assert.equal(body['valid'], true);
    assert.deepEqual(body['out'], { listen: '127.0.0.1:10027', relay: '127.0.0.1:10028', protocol: 'smtp', allowClients: ['127.0.0.1/32', '::1/128'] });
    assert.deepEqual(body['domains'], []);

    const d = makeConfigDir('[out]\nlisten = "127.0.0.1:10027"\nrelay = "nowhere"\n');
    try {
      const bad = await cli(['check-config', '--json', '--config', d.file]);
      assert.equal(bad.code, 78);
      const errors = (JSON.parse(bad.stdout) as { valid: boolean; errors: unknown[] }).errors;
      assert.deepEqual(errors, [{ file: d.file, line: 3, key: 'out.relay', message: 'expected "host:port" (IPv6 as "[::1]:port"), got "nowhere"' }]);
    } finally {
      rmSync(d.dir, { recursive: true, force: true });
    }
  });

  it('exits 78 and prints every error with file:line: key', async () => {
    const d = makeConfigDir('[out]\nlisten = "127.0.0.1:10027"\nrelay = "nowhere"\n\n[domain."example.com"]\nselector = "bad selector"\n');
    try {
      const r = await cli(['check-config', '--config', d.file]);
      assert.equal(r.code, 78);
      assert.ok(r.stderr.includes(`${d.file}:3: out.relay: expected "host:port"`), r.stderr);
      assert.ok(r.stderr.includes(`${d.file}:6: domain."example.com".selector: expected a DNS label`), r.stderr);
      assert.match(r.stderr, /: 2 errors\n$/);
    } finally {
      rmSync(d.dir, { recursive: true, force: true });
    }
  });
});

describe('dns-check and sign --config', () => {
  let d: ConfigDir;
  let dns: TestDns;
  const domains = ['good.example', 'wrong.example', 'missing.example', 'testing.example'];

  before(async () => {
    d = makeConfigDir(
      domains.map((x) => `[domain."${x}"]\nselector = "s1"\n`).join('\n') + '\n[signing]\nunsigned = "refuse"\n',
      domains.map((domain) => ({ domain, selector: 's1' })),
    );
    const zone = new Map<string, string[]>();
    zone.set('s1._domainkey.good.example', d.records.get('s1._domainkey.good.example')!);
    zone.set('s1._domainkey.wrong.example', [formatKeyRecord(testKey('rsa-2048').key)]);
    zone.set('s1._domainkey.testing.example', [d.records.get('s1._domainkey.testing.example')![0]!.replace('v=DKIM1; ', 'v=DKIM1; t=y; ')]);
    dns = await startDnsmasq(zone, domains);
    writeFileSync(d.file, `[dns]\nservers = ["${dns.server}"]\ntimeout_ms = 2000\n\n` + readFileSync(d.file, 'utf8'));
  });

  after(async () => {
    await dns?.stop();
    if (d) rmSync(d.dir, { recursive: true, force: true });
  });

  it('dns-check says, per record, whether it is published, matching and in testing mode', async () => {
    const r = await cli(['dns-check', '--config', d.file], undefined, d.dir);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const line = (name: string): string => r.stdout.split('\n').find((l) => l.includes(`s1._domainkey.${name}`)) ?? '';
    assert.match(line('good.example'), /^ok +s1\._domainkey\.good\.example +rsa-sha256 +matches .*good\.example\/s1\.key$/);
    assert.match(line('wrong.example'), /^mismatch +.*is not the one in/);
    assert.match(line('missing.example'), /^absent +.*no TXT record/);
    assert.match(line('testing.example'), /^testing +.*t=y/);
  });

  it('dns-check colours its verdicts on a terminal only, and gives --json for scripts', async () => {
    const coloured = await cli(['dns-check', '--config', d.file], undefined, d.dir, { FORCE_COLOR: '1' });
    assert.match(coloured.stdout, /^\x1b\[32mok\x1b\[39m +s1\._domainkey\.good\.example/m);
    assert.match(coloured.stdout, /^\x1b\[31mmismatch\x1b\[39m +s1\._domainkey\.wrong\.example/m);
    assert.match(coloured.stdout, /^\x1b\[33mtesting\x1b\[39m +s1\._domainkey\.testing\.example/m);
    const json = await cli(['dns-check', '--config', d.file, '--json'], undefined, d.dir, { FORCE_COLOR: '1' });
    assert.equal(json.code, 1);
    const records = JSON.parse(json.stdout) as { status: string; domain: string; selector: string }[];
    assert.deepEqual(
      records.map((r) => [r.domain, r.selector, r.status]).sort(),
      [
        ['good.example', 's1', 'ok'],
        ['missing.example', 's1', 'absent'],
        ['testing.example', 's1', 'testing'],
        ['wrong.example', 's1', 'mismatch'],
      ],
    );
  });

  it('dns-check exits 0 when every record matches', async () => {
    const only = makeConfigDir(`[dns]\nservers = ["${dns.server}"]\n[domain."good.example"]\nselector = "s1"\n`);
    try {
      const r = await cli(['dns-check', '--config', only.file, '--dns-server', dns.server], undefined, d.dir);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    } finally {
      rmSync(only.dir, { recursive: true, force: true });
    }
  });

  it('sign --config signs as the proxy would, and Mail::DKIM and dkimpy verify it', async () => {
    const message = MESSAGES['plain']!.replace('alice@example.com', 'alice@good.example');
    const r = await cli(['sign', '--config', d.file], message, d.dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /signed: d=good\.example s=s1 a=rsa-sha256/);
    const file = join(d.dir, 'signed.eml');
    writeFileSync(file, r.stdout, 'latin1');
    assert.deepEqual((await mailDkimVerify([file], dns.port)).map((x) => x.result), ['pass']);
    assert.deepEqual((await dkimpyVerify([file], dns.port)).map((x) => x.result), ['pass']);
  });

  it('sign --config refuses mail no rule signs when unsigned = "refuse"', async () => {
    const r = await cli(['sign', '--config', d.file], MESSAGES['plain']!.replace('alice@example.com', 'alice@elsewhere.example'), d.dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refused: no \[domain\] block for elsewhere\.example/);
  });
});
