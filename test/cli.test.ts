import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cli } from './helpers/cli.js';
import { startDnsmasq, startSilentDns, type TestDns } from './helpers/dns-server.js';
import { MESSAGES } from './helpers/messages.js';
import { dkimpyVerify, mailDkimVerify } from './helpers/peers.js';

/** Turns keygen's zone line back into the TXT value (strings joined). */
function recordFromZoneLine(line: string): string {
  return [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('');
}

describe('dkim-proxy command line', () => {
  let dir: string;
  let dns: TestDns;
  const records = new Map<string, string[]>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-cli-'));
    for (const [selector, algorithm] of [['cli', 'rsa-2048'], ['clied', 'ed25519']] as const) {
      const r = await cli(['keygen', '--domain', 'example.org', '--selector', selector, '--algorithm', algorithm, '--out', dir, '--zone']);
      assert.equal(r.code, 0, r.stderr);
      const zoneLine = r.stdout.trim();
      assert.match(zoneLine, new RegExp(`^${selector}\\._domainkey\\.example\\.org\\. IN TXT \\( ".*" \\)$`));
      for (const s of [...zoneLine.matchAll(/"([^"]*)"/g)]) assert.ok(s[1]!.length <= 255, 'TXT strings are at most 255 octets');
      records.set(`${selector}._domainkey.example.org`, [recordFromZoneLine(zoneLine)]);
    }
    dns = await startDnsmasq(records, ['example.org']);
  });

  after(async () => {
    await dns?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('keygen writes the key with mode 0600 and refuses to overwrite it', async () => {
    const file = join(dir, 'example.org', 'cli.key');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(readFileSync(file, 'utf8'), /^-----BEGIN RSA PRIVATE KEY-----/);
    const again = await cli(['keygen', '--domain', 'example.org', '--selector', 'cli', '--out', dir]);
    assert.equal(again.code, 73);
    assert.match(again.stderr, /exists; use --force/);
  });

  it('signs with a keygen key so that ours, Mail::DKIM and dkimpy verify it over real DNS', async () => {
    const signed = await cli(['sign', '-d', 'example.org', '-s', 'cli', '-k', join(dir, 'example.org', 'cli.key')], MESSAGES['plain']!.replace(/\r\n/g, '\n'));
    assert.equal(signed.code, 0, signed.stderr);
    assert.match(signed.stdout, /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.org; s=cli;/);
    assert.ok(!/[^\r]\n/.test(signed.stdout), 'output uses CRLF throughout');
    const file = join(dir, 'signed.eml');
    writeFileSync(file, signed.stdout, 'latin1');

    const verified = await cli(['verify', '--dns-server', dns.server, '--authserv-id', 'mx.example.net', file]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /^pass +d=example\.org s=cli a=rsa-sha256/m);
    assert.match(verified.stdout, /^Authentication-Results: mx\.example\.net;\n\tdkim=pass header\.d=example\.org/m);
    assert.deepEqual((await mailDkimVerify([file], dns.port)).map((r) => r.result), ['pass']);
    assert.deepEqual((await dkimpyVerify([file], dns.port)).map((r) => r.result), ['pass']);
  });

  it('keygen and verify give --json for scripts', async () => {
    const made = await cli(['keygen', '--domain', 'example.org', '--selector', 'json', '--out', dir, '--json']);
    assert.equal(made.code, 0, made.stderr);
    assert.equal(made.stderr, '');
    const k = JSON.parse(made.stdout) as { file: string; algorithm: string; name: string; record: string; strings: string[] };
    assert.equal(k.file, join(dir, 'example.org', 'json.key'));
    assert.equal(statSync(k.file).mode & 0o777, 0o600);
    assert.equal(k.name, 'json._domainkey.example.org.');
    assert.match(k.record, /^v=DKIM1; k=rsa; p=MII/);
    assert.equal(k.strings.join(''), k.record);

    const signed = await cli(['sign', '-d', 'example.org', '-s', 'cli', '-k', join(dir, 'example.org', 'cli.key')], MESSAGES['plain']!);
    const tampered = signed.stdout.replace('See you tomorrow', 'See you never');
    const verified = await cli(['verify', '--dns-server', dns.server, '--authserv-id', 'mx.test', '--json'], tampered);
    assert.equal(verified.code, 1);
    const bPrefix = / b=([A-Za-z0-9+/]{8})/.exec(signed.stdout.replace(/\r\n[ \t]+/g, ' '))![1]!;
    // A '/' is not allowed in an RFC 2045 token, so such a prefix is quoted.
    const headerB = bPrefix.includes('/') ? `"${bPrefix}"` : bPrefix;
    assert.deepEqual(JSON.parse(verified.stdout), {
      results: [{ result: 'fail', d: 'example.org', s: 'cli', a: 'rsa-sha256', reason: 'body hash did not verify', detail: null, testing: false }],
      arc: { result: 'none', instance: 0, oldestPass: null, sealer: null, reason: 'the message has no ARC sets' },
      authenticationResults: `Authentication-Results: mx.test; dkim=fail (body-changed) reason="body hash did not verify" header.d=example.org header.i=@example.org header.s=cli header.a=rsa-sha256 header.b=${headerB}; arc=none`,
    });
  });

  it('signs with ed25519 and verifies from stdin', async () => {
    const signed = await cli(['sign', '-d', 'example.org', '-s', 'clied', '-a', 'ed25519-sha256', '-c', 'simple/simple', '-k', join(dir, 'example.org', 'clied.key')], MESSAGES['8bit utf-8']!);
    assert.equal(signed.code, 0, signed.stderr);
    const verified = await cli(['verify', '--dns-server', dns.server], Buffer.from(signed.stdout, 'latin1'));
    assert.equal(verified.code, 0, verified.stdout);
    assert.match(verified.stdout, /^pass +d=example\.org s=clied a=ed25519-sha256/m);
  });

  it('exits 1 for a tampered message, with the reason', async () => {
    const signed = await cli(['sign', '-d', 'example.org', '-s', 'cli', '-k', join(dir, 'example.org', 'cli.key')], MESSAGES['plain']!);
    const verified = await cli(['verify', '--dns-server', dns.server], signed.stdout.replace('See you tomorrow', 'See you never'));
    assert.equal(verified.code, 1);
    assert.match(verified.stdout, /^fail +d=example\.org s=cli a=rsa-sha256 reason="body hash did not verify"/m);
  });

  it('exits 1 for an unsigned message and a missing key record', async () => {
    const unsigned = await cli(['verify', '--dns-server', dns.server], MESSAGES['plain']!);
    assert.equal(unsigned.code, 1);
    assert.match(unsigned.stdout, /dkim=none/);
    const signed = await cli(['sign', '-d', 'example.org', '-s', 'nosuch', '-k', join(dir, 'example.org', 'cli.key')], MESSAGES['plain']!);
    const verified = await cli(['verify', '--dns-server', dns.server], signed.stdout);
    assert.equal(verified.code, 1);
    assert.match(verified.stdout, /^permerror d=example\.org s=nosuch .*reason="no key/m);
  });

  it('exits 75 with temperror when the DNS server does not answer, within the timeout', async () => {
    const silent = await startSilentDns();
    try {
      const signed = await cli(['sign', '-d', 'example.org', '-s', 'cli', '-k', join(dir, 'example.org', 'cli.key')], MESSAGES['plain']!);
      const verified = await cli(['verify', '--dns-server', silent.server, '--timeout', '300'], signed.stdout);
      assert.equal(verified.code, 75, verified.stdout + verified.stderr);
      assert.match(verified.stdout, /^temperror d=example\.org s=cli .*reason="dns timeout/m);
    } finally {
      await silent.stop();
    }
  });

  it('gives usage errors exit 64 and names the problem', async () => {
    const cases: [string[], RegExp][] = [
      [['sign', '-d', 'example.org'], /needs --domain, --selector and --key/],
      [['sign', '-d', 'example.org', '-s', 's', '-k', 'x', '-a', 'rsa-md5'], /--algorithm: expected one of/],
      [['sign', '-d', 'example.org', '-s', 's', '-k', 'x', '-c', 'loose'], /--canonicalization/],
      [['sign', '--bogus'], /Unknown option '--bogus'/],
      [['keygen', '-d', 'example.org', '-s', 'bad selector!'], /--selector/],
      [['frobnicate'], /unknown command "frobnicate"/],
      [['run', '--log-level', 'loud'], /--log-level: expected one of trace, debug, info, warn, error, fatal, got "loud"/],
      [['run', '--log-format', 'xml'], /--log-format: expected one of auto, json, pretty, got "xml"/],
      [['stats', '--url', 'localhost:9090'], /--url: expected http:\/\/HOST:PORT\/metrics/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      assert.equal(r.code, 64, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });

  it('names the key file when it cannot be used', async () => {
    const bad = join(dir, 'bad.key');
    writeFileSync(bad, 'not a key', { mode: 0o600 });
    const r = await cli(['sign', '-d', 'example.org', '-s', 's', '-k', bad], MESSAGES['plain']!);
    assert.equal(r.code, 65);
    assert.match(r.stderr, /key .*bad\.key: not a PEM private key/);
    const missing = await cli(['sign', '-d', 'example.org', '-s', 's', '-k', join(dir, 'nope.key')], MESSAGES['plain']!);
    assert.equal(missing.code, 66);
    assert.match(missing.stderr, /cannot read key .*nope\.key: ENOENT/);
  });
});
