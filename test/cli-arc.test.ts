/**
 * `dkim-proxy seal` and `verify`'s ARC output, run as the real command, with
 * keys published by dnsmasq; the sealed copies are checked by dkimpy and
 * Mail::DKIM too.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatKeyRecord, parsePrivateKey } from '../src/dkim/index.js';
import { peerArcResults } from './helpers/arc-peers.js';
import { withResults } from './helpers/arc.js';
import { cli } from './helpers/cli.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { testKey } from './helpers/test-keys.js';

const MESSAGE = Buffer.from('From: Alice <alice@example.com>\nTo: list@lists.example.org\nSubject: Hello\nDate: Tue, 1 Dec 2026 10:00:00 +0000\nMessage-ID: <cli-arc@example.com>\n\nHello.\n', 'latin1');
const ID = 'mx.lists.example.org';

describe('dkim-proxy seal', () => {
  let dir: string;
  let dns: TestDns;
  const key: Record<'pkcs1' | 'pkcs8' | 'rsa1024' | 'rsa512', string> = {} as never;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-cli-arc-'));
    const records = new Map<string, string[]>();
    const pkcs1 = testKey('rsa-2048').pem;
    const parsed = parsePrivateKey(pkcs1);
    assert.ok(parsed.ok);
    const pems = {
      pkcs1,
      pkcs8: parsed.key.key.export({ format: 'pem', type: 'pkcs8' }).toString(),
      rsa1024: testKey('rsa-1024').pem,
      rsa512: generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey.export({ format: 'pem', type: 'pkcs1' }).toString(),
    };
    for (const [name, pem] of Object.entries(pems) as [keyof typeof pems, string][]) {
      key[name] = join(dir, `${name}.test-key.pem`);
      writeFileSync(key[name], pem, { mode: 0o600 });
      // The 512-bit key is refused before anything is signed: it needs no record.
      if (name !== 'rsa512') records.set(`${name}._domainkey.lists.example.org`, [formatKeyRecord(createPrivateKey(pem))]);
    }
    dns = await startDnsmasq(records, ['example.org']);
  });

  after(async () => {
    await dns?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const sealArgs = (selector: 'pkcs1' | 'pkcs8' | 'rsa1024' | 'rsa512', more: string[] = []): string[] => [
    'seal', '--domain', 'lists.example.org', '--selector', selector, '--key', key[selector], '--authserv-id', ID, ...more,
  ];
  const save = (name: string, data: string | Buffer): string => {
    const file = join(dir, name);
    writeFileSync(file, data);
    return file;
  };

  it('prints the message with the new set on top, byte for byte below it; --timestamp and --headers as given; PKCS#1, PKCS#8 and 1024-bit keys', async () => {
    const input = withResults(Buffer.from(MESSAGE.toString('latin1').replace(/\n/g, '\r\n'), 'latin1'), ID, 'spf=pass smtp.mailfrom=alice@example.com; dkim=pass header.d=example.com');
    const files: string[] = [];
    for (const selector of ['pkcs1', 'pkcs8', 'rsa1024'] as const) {
      const r = await cli(sealArgs(selector, ['--timestamp', '1764583200', '--headers', 'From:To:Subject:Date:Message-ID']), input);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /sealed: i=1 cv=none d=lists\.example\.org/);
      const lines = r.stdout.split(/\r\n(?![ \t])/);
      assert.match(lines[0]!, /^ARC-Seal: i=1; cv=none; a=rsa-sha256; d=lists\.example\.org; s=\w+;\r\n\tt=1764583200; b=/);
      assert.match(lines[1]!, /^ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed\/relaxed;/);
      assert.match(lines[1]!.replace(/\r\n\t/g, ''), /t=1764583200; h=From:To:Subject:Date:Message-ID;/);
      assert.equal(lines[2], `ARC-Authentication-Results: i=1; ${ID};\r\n\tspf=pass smtp.mailfrom=alice@example.com;\r\n\tdkim=pass header.d=example.com`);
      assert.ok(Buffer.from(r.stdout, 'latin1').subarray(-input.length).equals(input));
      files.push(save(`sealed-${selector}.eml`, r.stdout));
    }
    const peers = await peerArcResults(files, dns, ['dkimpy', 'maildkim']);
    assert.deepEqual(peers, { dkimpy: ['pass', 'pass', 'pass'], maildkim: ['pass', 'pass', 'pass'] });
    const verified = await cli(['verify', '--dns-server', dns.server, '--json', files[1]!]);
    const json = JSON.parse(verified.stdout) as { arc: Record<string, unknown> };
    assert.deepEqual(json.arc, { result: 'pass', instance: 1, oldestPass: 1, sealer: 'lists.example.org', reason: '1 set, sealed by lists.example.org' });
  });

  it('a 512-bit key is refused (RFC 8301), and so are missing flags and a bad timestamp', async () => {
    const weak = await cli(sealArgs('rsa512'), MESSAGE);
    assert.equal(weak.code, 65);
    assert.match(weak.stderr, /512 bits; RFC 8301 requires at least 1024/);
    assert.equal((await cli(['seal', '--domain', 'lists.example.org'], MESSAGE)).code, 64);
    assert.equal((await cli(sealArgs('pkcs1', ['--timestamp', 'yesterday']), MESSAGE)).code, 64);
    const arcSeal = await cli(sealArgs('pkcs1', ['--headers', 'From:ARC-Seal']), MESSAGE);
    assert.equal(arcSeal.code, 64);
    assert.match(arcSeal.stderr, /must not sign arc-seal/);
  });

  it('takes the chain from our arc= result: fail seals cv=fail (exit 0); a newest cv=fail, 50 sets, or a chain without arc= is exit 1 with nothing printed', async () => {
    const first = await cli(sealArgs('pkcs1'), withResults(MESSAGE, ID, 'dkim=pass header.d=example.com'));
    assert.equal(first.code, 0, first.stderr);
    const one = Buffer.from(first.stdout, 'latin1');

    const failing = await cli(sealArgs('pkcs1'), withResults(one, ID, 'arc=fail'));
    assert.equal(failing.code, 0, failing.stderr);
    assert.match(failing.stdout, /^ARC-Seal: i=2; cv=fail;/);
    const afterFail = await cli(sealArgs('pkcs1'), withResults(Buffer.from(failing.stdout, 'latin1'), ID, 'arc=fail'));
    assert.equal(afterFail.code, 1);
    assert.equal(afterFail.stdout, '');
    assert.match(afterFail.stderr, /not sealed: the chain has already failed \(the ARC-Seal at i=2 says cv=fail\)/);

    const silent = await cli(sealArgs('pkcs1'), one);
    assert.equal(silent.code, 1);
    assert.match(silent.stderr, /no arc= result from mx\.lists\.example\.org/);

    const full = await cli(sealArgs('pkcs1'), withResults(Buffer.from(first.stdout.replace(/^(ARC-[A-Za-z-]+: i=)1;/gm, '$150;'), 'latin1'), ID, 'arc=pass'));
    assert.equal(full.code, 1);
    assert.match(full.stderr, /already has 50 ARC sets/);

    const passing = await cli(sealArgs('pkcs1'), withResults(one, ID, 'arc=pass'));
    assert.equal(passing.code, 0);
    assert.match(passing.stdout, /^ARC-Seal: i=2; cv=pass;/);
    const [r] = (await peerArcResults([save('two.eml', passing.stdout)], dns, ['dkimpy'])).dkimpy!;
    assert.equal(r, 'pass');
  });

  it('verify --json always has arc: a failing chain, an empty message, a header with no body', async () => {
    const first = await cli(sealArgs('pkcs1'), withResults(MESSAGE, ID, 'dkim=none'));
    const tampered = first.stdout.replace('Hello.', 'Goodbye.');
    const broken = await cli(['verify', '--dns-server', dns.server, '--json'], tampered);
    assert.equal(broken.code, 1);
    const arc = (JSON.parse(broken.stdout) as { arc: Record<string, unknown> }).arc;
    assert.equal(arc['result'], 'fail');
    assert.equal(arc['instance'], 1);
    assert.match(String(arc['reason']), /^i=1: ARC-Message-Signature body hash did not verify/);
    assert.match((JSON.parse(broken.stdout) as { authenticationResults: string }).authenticationResults, /; arc=fail \(i=1: ARC-Message-Signature body hash did not verify\)$/);
    for (const input of ['', 'Subject: no body', '\n\nbody only\n']) {
      const r = await cli(['verify', '--dns-server', dns.server, '--json'], input);
      const parsed = JSON.parse(r.stdout) as { arc: Record<string, unknown> };
      assert.deepEqual(parsed.arc, { result: 'none', instance: 0, oldestPass: null, sealer: null, reason: 'the message has no ARC sets' }, JSON.stringify(input));
    }
    const text = await cli(['verify', '--dns-server', dns.server], tampered);
    assert.match(text.stdout, /^fail\s+arc i=1: i=1: ARC-Message-Signature body hash did not verify/m);
  });
});
