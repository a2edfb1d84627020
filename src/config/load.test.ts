import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { generateKeyPairSync } from 'node:crypto';
import { loadConfig, type LoadResult } from './load.js';
import { makeConfigDir, type ConfigDir } from '../../test/helpers/config-dir.js';

const dirs: ConfigDir[] = [];
after(() => dirs.forEach((d) => rmSync(d.dir, { recursive: true, force: true })));

async function load(toml: string, keys: Parameters<typeof makeConfigDir>[1] = []): Promise<LoadResult & { dir: ConfigDir }> {
  const d = makeConfigDir(toml, keys);
  dirs.push(d);
  return { ...(await loadConfig(d.file, { cwd: d.dir, env: {} })), dir: d };
}

function issues(r: LoadResult): string[] {
  return r.ok ? [] : r.issues.map((i) => `${i.line ?? '?'}|${i.key}|${i.message}`);
}

/** Asserts that exactly one issue names `key` at `line` with a matching message. */
function expectIssue(r: LoadResult, line: number, key: string, message: RegExp): void {
  assert.equal(r.ok, false, 'expected the config to be refused');
  const found = issues(r).filter((i) => i.startsWith(`${line}|${key}|`) && message.test(i));
  assert.equal(found.length, 1, `no issue ${line}|${key}|${message} among:\n${issues(r).join('\n')}`);
}

describe('config loading', () => {
  it('loads a minimal config with defaults and the key it needs', async () => {
    const r = await load('[out]\nlisten = "127.0.0.1:10027"\nrelay = "127.0.0.1:10028"\n\n[domain."Example.COM"]\nselector = "s1"\nsubdomains = true\n', [{ domain: 'example.com', selector: 's1' }]);
    assert.ok(r.ok, issues(r).join('\n'));
    const block = r.config.signing.domains.get('example.com')!;
    assert.equal(block.signer.selector, 's1');
    assert.equal(block.signer.algorithm, 'rsa-sha256');
    assert.deepEqual(block.signer.canonicalization, { header: 'relaxed', body: 'relaxed' });
    assert.equal(block.signer.overSign, true);
    assert.equal(block.policy, 'SignAlways');
    assert.equal(block.signer.key.keyType, 'rsa');
    assert.deepEqual(r.config.out!.allowClients, ['127.0.0.1/32', '::1/128']);
    assert.equal(r.config.out!.maxMessageBytes, 50 * 1024 * 1024);
    assert.equal(r.config.in, undefined);
    assert.ok(Object.isFrozen(r.config) && Object.isFrozen(block.signer));
  });

  it('reports TOML syntax errors with their line', async () => {
    const r = await load('[out]\nlisten = "127.0.0.1:1"\nrelay = \n');
    assert.equal(r.ok, false);
    assert.match(issues(r)[0]!, /^3\|\|TOML syntax: /);
  });

  it('names the key and line of every error, all at once', async () => {
    const r = await load(
      [
        '[out]', //                                   1
        'listen = "127.0.0.1:10027"', //               2
        'relay = "localhost"', //                      3
        'max_size = 100', //                           4
        'allow_clients = ["10.0.0.0/33"]', //          5
        'max_connections = "many"', //                 6
        '', //                                         7
        '[signing]', //                                8
        'algorithm = "rsa-sha512"', //                 9
        'additional_signatures = ["espp"]', //         10
        'algo = "rsa-sha256"', //                      11
        '', //                                         12
        '[domain."example.com"]', //                   13
        'selector = "mail_2024!"', //                  14
        'canonicalization = "loose"', //               15
        'expire = "forever"', //                       16
        'headers = ["To", "Subject"]', //              17
        'policy = "SignIfInDNS"', //                   18
        'identity = "@other.example"', //              19
        '', //                                         20
        '[signature."esp"]', //                        21
        'selector = "x"', //                           22
        '', //                                         23
        '[dnss]', //                                   24
        'servers = []', //                             25
      ].join('\n'),
    );
    expectIssue(r, 3, 'out.relay', /expected "host:port"/);
    expectIssue(r, 4, 'out.max_size', /unknown key "max_size"; did you mean "max_message_bytes"\?/);
    expectIssue(r, 5, 'out.allow_clients', /CIDR block/);
    expectIssue(r, 6, 'out.max_connections', /expected a whole number/);
    expectIssue(r, 9, 'signing.algorithm', /expected one of "rsa-sha256", "ed25519-sha256", "rsa-sha1", got "rsa-sha512"/);
    expectIssue(r, 10, 'signing.additional_signatures', /no \[signature."espp"\] block/);
    expectIssue(r, 11, 'signing.algo', /did you mean "algorithm"\?/);
    expectIssue(r, 14, 'domain."example.com".selector', /expected a DNS label/);
    expectIssue(r, 15, 'domain."example.com".canonicalization', /got "loose"/);
    expectIssue(r, 16, 'domain."example.com".expire', /expected a duration/);
    expectIssue(r, 17, 'domain."example.com".headers', /must include From/);
    expectIssue(r, 18, 'domain."example.com".policy', /"SignOnlyIfInDNS"/);
    expectIssue(r, 21, 'signature.esp.domain', /required: the signing domain/);
    expectIssue(r, 24, 'dnss', /did you mean "dns"\?/);
  });

  it('[in] runs DKIM, SPF, DMARC and ARC by default, reporting only; checks and the verdict switches are validated', async () => {
    const base = '[in]\nlisten = "127.0.0.1:10025"\nrelay = "127.0.0.1:10026"\nhostname = "mx.example.com"\n';
    const d = await load(base);
    assert.ok(d.ok, issues(d).join('\n'));
    assert.deepEqual(d.config.in!.checks, ['dkim', 'spf', 'dmarc', 'arc']);
    assert.deepEqual([d.config.in!.rejectFail, d.config.in!.rejectError, d.config.in!.receivedSpf, d.config.in!.xDkimAuthenticationResults], [false, false, false, false]);
    const on = await load(`${base}checks = ["DKIM", "dmarc", "spf"]\nreject_fail = true\nreject_error = true\nreceived_spf = true\nx_dkim_authentication_results = true\n`);
    assert.ok(on.ok, issues(on).join('\n'));
    assert.deepEqual(on.config.in!.checks, ['dkim', 'dmarc', 'spf']);
    assert.equal(on.config.in!.rejectFail, true);
    expectIssue(await load(`${base}checks = ["dkim", "adsp"]\n`), 5, 'in.checks', /expected some of "dkim", "spf", "dmarc", "arc", got "adsp"/);
    expectIssue(await load(`${base}checks = ["dmarc"]\n`), 5, 'in.checks', /dmarc needs "dkim" or "spf"/);
    expectIssue(await load(`${base}checks = ["dkim"]\nreject_fail = true\n`), 6, 'in.reject_fail', /add "dmarc" to \[in\] checks/);
    expectIssue(await load(`${base}reject_error = "yes"\n`), 5, 'in.reject_error', /expected true or false, got "yes"/);
    assert.equal(d.config.in!.spfMailfrom, 'address');
    const domainForm = await load(`${base}spf_mailfrom = "domain"\n`);
    assert.ok(domainForm.ok && domainForm.config.in!.spfMailfrom === 'domain');
    expectIssue(await load(`${base}spf_mailfrom = "local-part"\n`), 5, 'in.spf_mailfrom', /address.*domain/);
    const half = await load(`${base}checks = ["dkim", "dmarc"]\n`);
    assert.ok(half.ok);
    assert.match(half.warnings.map((w) => w.message).join('\n'), /dmarc without spf/);
  });

  it('[arc]: the sealer with its key from the signers\' template, the authserv-id from [in]; every mistake named', async () => {
    const inBase = '[in]\nlisten = "127.0.0.1:10025"\nrelay = "127.0.0.1:10026"\nhostname = "mx.lists.example.org"\n';
    const ok = await load(`${inBase}arc_seal = true\narc_trusted_sealers = ["Lists.Example.NET."]\n\n[arc]\ndomain = "lists.example.org"\nselector = "arc1"\n`, [{ domain: 'lists.example.org', selector: 'arc1' }]);
    assert.ok(ok.ok, issues(ok).join('\n'));
    assert.equal(ok.config.arc!.sealer.domain, 'lists.example.org');
    assert.equal(ok.config.arc!.authservId, 'mx.lists.example.org');
    assert.equal(ok.config.arc!.sealer.algorithm, 'rsa-sha256');
    assert.deepEqual(ok.config.in!.arcTrustedSealers, ['lists.example.net']);
    assert.equal(ok.config.in!.arcSeal, true);
    const ed = await load(`${inBase}arc_seal = true\n\n[signing]\nkey_file = "keys/%{d}/%{s}.key"\n\n[arc]\ndomain = "lists.example.org"\nselector = "ed"\nalgorithm = "ed25519-sha256"\nauthserv_id = "gw.example"\n`, [{ domain: 'lists.example.org', selector: 'ed', kind: 'ed25519' }]);
    assert.ok(ed.ok, issues(ed).join('\n'));
    assert.equal(ed.config.arc!.authservId, 'gw.example');
    expectIssue(await load(`${inBase}arc_seal = true\n`), 5, 'in.arc_seal', /add an \[arc\] table/);
    expectIssue(await load(`${inBase}arc_trusted_sealers = ["not a domain"]\n`), 5, 'in.arc_trusted_sealers', /expected domain names/);
    expectIssue(await load(`${inBase}checks = ["dkim", "dmarc"]\narc_trusted_sealers = ["lists.example.net"]\n`), 6, 'in.arc_trusted_sealers', /add "arc" and "dmarc"/);
    expectIssue(await load(`${inBase}arc_seal = true\n\n[arc]\ndomain = "lists.example.org"\nselector = "missing"\n`), 7, 'arc.key_file', /cannot read key .*missing\.key/);
    expectIssue(await load(`${inBase}arc_seal = true\n\n[arc]\nselector = "arc1"\n`), 7, 'arc.domain', /sealing domain/);
    expectIssue(await load(`${inBase}arc_seal = true\n\n[arc]\ndomain = "lists.example.org"\nselector = "arc1"\nheaders = ["From", "ARC-Seal"]\n`, [{ domain: "lists.example.org", selector: "arc1" }]), 10, "arc.headers", /must not sign arc-seal/);
    expectIssue(await load(`${inBase}arc_seal = true\n\n[arc]\ndomain = "lists.example.org"\nselector = "arc1"\nalgorithm = "ed25519-sha256"\n`, [{ domain: "lists.example.org", selector: "arc1" }]), 10, "arc.algorithm", /needs an ed25519 key/);
    const unused = await load(`${inBase}\n[arc]\ndomain = "lists.example.org"\nselector = "arc1"\n`, [{ domain: 'lists.example.org', selector: 'arc1' }]);
    assert.ok(unused.ok);
    assert.match(unused.warnings.map((w) => w.message).join('\n'), /nothing seals with it/);
  });

  it('proxy_protocol_from: CIDR blocks, normalized; anything else is named', async () => {
    const base = '[out]\nlisten = "127.0.0.1:10027"\nrelay = "127.0.0.1:10028"\n';
    const ok = await load(`${base}proxy_protocol_from = ["10.0.0.10", "2001:db8::/32"]\n`);
    assert.ok(ok.ok, issues(ok).join('\n'));
    assert.deepEqual(ok.config.out!.proxyProtocolFrom, ['10.0.0.10/32', '2001:db8::/32']);
    const none = await load(base);
    assert.ok(none.ok && none.config.out!.proxyProtocolFrom.length === 0);
    expectIssue(await load(`${base}proxy_protocol_from = ["haproxy.internal"]\n`), 4, 'out.proxy_protocol_from', /expected an address or CIDR block/);
  });

  it('transport_encoding: "7bit" unless set; "preserve"; anything else is named, and [in] has no such key', async () => {
    const base = '[out]\nlisten = "127.0.0.1:10027"\nrelay = "127.0.0.1:10028"\n';
    const none = await load(base);
    assert.ok(none.ok && none.config.out!.transportEncoding === '7bit');
    const preserve = await load(`${base}transport_encoding = "preserve"\n`);
    assert.ok(preserve.ok && preserve.config.out!.transportEncoding === 'preserve');
    expectIssue(await load(`${base}transport_encoding = "8bit"\n`), 4, 'out.transport_encoding', /"7bit".*"preserve"/);
    const inTable = await load('[in]\nlisten = "127.0.0.1:10025"\nrelay = "127.0.0.1:10026"\nauthserv_id = "mx.example.com"\ntransport_encoding = "7bit"\n');
    expectIssue(inTable, 5, 'in.transport_encoding', /unknown key/);
  });

  it('requires listen and relay, and refuses a lone tls_cert', async () => {
    const r = await load('[in]\nauthserv_id = "mx.example.com"\ntls_cert = "/etc/ssl/c.pem"\n');
    expectIssue(r, 1, 'in.listen', /required/);
    expectIssue(r, 1, 'in.relay', /required/);
    expectIssue(r, 3, 'in.tls_cert', /needs tls_key too/);
  });

  it('refuses a spool_dir it cannot write into, at load rather than at the first large message', async () => {
    const listener = (spool: string): string => `[out]\nlisten = "127.0.0.1:10027"\nrelay = "127.0.0.1:10028"\nspool_dir = "${spool}"\n`;
    expectIssue(await load(listener('no/such/spool')), 4, 'out.spool_dir', /cannot write to .*no\/such\/spool: ENOENT \(make it, .*install -d -m 0700/);
    const d = makeConfigDir('');
    dirs.push(d);
    writeFileSync(join(d.dir, 'a-file'), '');
    expectIssue(await load(listener(join(d.dir, 'a-file'))), 4, 'out.spool_dir', /a-file is not a directory/);
    mkdirSync(join(d.dir, 'spool'), { mode: 0o700 });
    const ok = await load(listener(join(d.dir, 'spool')));
    assert.ok(ok.ok, issues(ok).join('\n'));
  });

  // openssl makes the certificates: a tool outside Node, so not in `npm run test:unit`.
  it('refuses TLS files it cannot read, or a certificate that does not go with its key', { skip: process.env['DKIM_PROXY_UNIT'] ? 'needs openssl; npm test runs it' : false }, async () => {
    const d = makeConfigDir('');
    dirs.push(d);
    const pair = (name: string): { cert: string; key: string } => {
      const files = { cert: join(d.dir, `${name}.crt`), key: join(d.dir, `${name}.key`) };
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', files.key, '-out', files.cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore', timeout: 30_000 });
      return files;
    };
    const [a, b] = [pair('a'), pair('b')];
    const listener = (cert: string, key: string): string => `[in]\nlisten = "127.0.0.1:10025"\nrelay = "127.0.0.1:10026"\ntls_cert = "${cert}"\ntls_key = "${key}"\n`;
    assert.ok((await load(listener(a.cert, a.key))).ok, 'a certificate with its own key loads');
    expectIssue(await load(listener(join(d.dir, 'missing.crt'), a.key)), 4, 'in.tls_cert', /cannot read .*missing\.crt: ENOENT/);
    expectIssue(await load(listener(a.cert, join(d.dir, 'missing.key'))), 5, 'in.tls_key', /cannot read .*missing\.key: ENOENT/);
    expectIssue(await load(listener(a.cert, b.key)), 4, 'in.tls_cert', /a\.crt with .*b\.key: .*key values mismatch/);
  });

  it('refuses rsa-sha1 unless the legacy switch is on, and then warns', async () => {
    const refused = await load('[domain."example.com"]\nselector = "s1"\nalgorithm = "rsa-sha1"\n', [{ domain: 'example.com', selector: 's1' }]);
    expectIssue(refused, 3, 'domain."example.com".algorithm', /RFC 8301/);
    const legacy = await load('[signing]\nlegacy_sha1 = true\n[domain."example.com"]\nselector = "s1"\nalgorithm = "rsa-sha1"\n', [{ domain: 'example.com', selector: 's1' }]);
    assert.ok(legacy.ok, issues(legacy).join('\n'));
    assert.ok(legacy.warnings.some((w) => w.key === 'domain."example.com".algorithm'));
  });

  it('refuses missing, unreadable, malformed, short and mismatched keys, naming the key that points to them', async () => {
    const missing = await load('[domain."example.com"]\nselector = "s1"\n');
    expectIssue(missing, 1, 'domain."example.com".key_file', /cannot read key .*keys\/example\.com\/s1\.key: ENOENT/);

    const d = makeConfigDir('[domain."example.com"]\nselector = "s1"\nkey_file = "bad.pem"\n\n[domain."example.org"]\nselector = "ed"\nkey_file = "keys/example.org/ed.key"\n\n[domain."example.net"]\nselector = "short"\nkey_file = "short.pem"\n', [
      { domain: 'example.org', selector: 'ed', kind: 'ed25519' },
    ]);
    dirs.push(d);
    writeFileSync(join(d.dir, 'bad.pem'), '-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n', { mode: 0o600 });
    writeFileSync(join(d.dir, 'short.pem'), generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey.export({ format: 'pem', type: 'pkcs1' }), { mode: 0o600 });
    const r = await loadConfig(d.file, { cwd: d.dir, env: {} });
    expectIssue(r, 3, 'domain."example.com".key_file', /bad\.pem: cannot parse the PKCS8 key/);
    expectIssue(r, 5, 'domain."example.org".algorithm', /rsa-sha256 needs an rsa key, but .*ed\.key holds an ed25519 key/);
    expectIssue(r, 11, 'domain."example.net".key_file', /512 bits; RFC 8301 requires at least 1024/);
  });

  it('warns about a key others can read, ed25519 alone, l= and an open listener', async () => {
    const d = makeConfigDir('[out]\nlisten = "0.0.0.0:10027"\nrelay = "127.0.0.1:10028"\nallow_clients = ["0.0.0.0/0"]\n\n[domain."example.com"]\nselector = "ed"\nalgorithm = "ed25519-sha256"\nbody_length = true\n', [
      { domain: 'example.com', selector: 'ed', kind: 'ed25519' },
    ]);
    dirs.push(d);
    chmodSync(join(d.dir, 'keys', 'example.com', 'ed.key'), 0o644);
    const r = await loadConfig(d.file, { cwd: d.dir, env: {} });
    assert.ok(r.ok, issues(r).join('\n'));
    const w = r.warnings.map((x) => `${x.key}: ${x.message}`);
    assert.ok(w.some((x) => /^domain."example.com".key_file: .*readable by group or others/.test(x)), w.join('\n'));
    assert.ok(w.some((x) => /^domain."example.com".algorithm: .*ed25519 only/.test(x)), w.join('\n'));
    assert.ok(w.some((x) => /^domain."example.com".body_length: /.test(x)), w.join('\n'));
    assert.ok(w.some((x) => /^out.allow_clients: .*open signing proxy/.test(x)), w.join('\n'));
  });

  it('reads sizes, durations and Momentum-style header lists', async () => {
    const r = await load('[out]\nlisten = "[::1]:10027"\nrelay = "127.0.0.1:10028"\nmax_message_bytes = "20M"\nidle_timeout = "2m"\n\n[domain."example.com"]\nselector = "s1"\nexpire = "7d"\nheaders = "From:Subject?:Received+"\n', [{ domain: 'example.com', selector: 's1' }]);
    assert.ok(r.ok, issues(r).join('\n'));
    assert.deepEqual(r.config.out!.listen, { host: '::1', port: 10027 });
    assert.equal(r.config.out!.maxMessageBytes, 20 * 1024 * 1024);
    assert.equal(r.config.out!.idleTimeoutMs, 120_000);
    const s = r.config.signing.domains.get('example.com')!.signer;
    assert.equal(s.expire, 7 * 86400);
    assert.deepEqual(s.headers, ['From', 'Subject?', 'Received+']);
  });

  it('[dns] cache_ttl and negative_ttl take 0 (cache nothing); other durations do not', async () => {
    const base = '[out]\nlisten = "127.0.0.1:10027"\nrelay = "127.0.0.1:10028"\n';
    const r = await load(`${base}\n[dns]\ncache_ttl = 0\nnegative_ttl = "0s"\n`);
    assert.ok(r.ok, issues(r).join('\n'));
    assert.deepEqual([r.config.dns.cacheTtlSeconds, r.config.dns.negativeTtlSeconds], [0, 0]);
    expectIssue(await load('[out]\nlisten = "127.0.0.1:10027"\nrelay = "127.0.0.1:10028"\nidle_timeout = 0\n'), 4, 'out.idle_timeout', /expected a duration/);
  });
});
