/**
 * Who may sign what: SMTP AUTH (PLAIN, LOGIN) on `out` against users kept as
 * scrypt hashes, offered on loopback and, for a client elsewhere (named by a
 * balancer's PROXY header), only after STARTTLS; failed logins slowed and
 * then cut off; sign_condition = "auth_user" signing only a user's own
 * domains; `dkim-proxy passwd` as scripts run it; `[signing] match` each way.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { formatUsers, hashPassword } from '../src/auth/users.js';
import { loadConfig } from '../src/config/load.js';
import { processMessage } from '../src/pipeline/offline.js';
import { SigningProcessor } from '../src/pipeline/sign.js';
import { cli } from './helpers/cli.js';
import { makeConfigDir } from './helpers/config-dir.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { mailDkimVerify } from './helpers/peers.js';
import { startProxy, type RunningProxy } from './helpers/proxy.js';
import { clientOn, rawClient, type RawClient } from './helpers/raw-client.js';
import { startSink, type Sink } from './helpers/sink.js';
import { zoneLookup } from './helpers/fixtures.js';

const plain = (user: string, password: string): string => Buffer.from(`\0${user}\0${password}`).toString('base64');
const message = (from: string, k: number) => `From: ${from}\r\nTo: b@example.net\r\nSubject: auth ${k}\r\nMessage-ID: <auth${k}@x>\r\n\r\nhello\r\n`;

/** The rest of a transaction after EHLO (and AUTH): the DATA reply line. */
async function send(c: RawClient, from: string, k: number): Promise<string> {
  for (const command of [`MAIL FROM:<${from.replace(/^.*</, '').replace(/>$/, '')}>`, 'RCPT TO:<b@example.net>', 'DATA']) {
    c.write(`${command}\r\n`);
    const r = await c.reply();
    if (!/^[23]/.test(r[0]!)) return r[0]!;
  }
  c.write(`${message(from, k)}.\r\n`);
  return (await c.reply())[0]!;
}

describe('SMTP AUTH and sign_condition = "auth_user"', () => {
  let dir: string;
  let dns: TestDns;
  let sink: Sink;
  let proxy: RunningProxy;
  let refusing: RunningProxy;
  let relaying: RunningProxy;
  const usersFile = (): string => join(dir, 'users');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-auth-'));
    const cert = { key: join(dir, 'tls.key'), cert: join(dir, 'tls.crt') };
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', cert.key, '-out', cert.cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore', timeout: 30_000 });
    writeFileSync(usersFile(), formatUsers([{ name: 'alice', hash: await hashPassword('alice-password'), domains: ['a.example'] }]), { mode: 0o600 });
    sink = await startSink();
    const toml = (extra: string, unsigned = 'relay') =>
      `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\nallow_clients = ["127.0.0.0/8", "192.0.2.0/24"]\nproxy_protocol_from = ["127.0.0.1/32"]\ntls_cert = "${cert.cert}"\ntls_key = "${cert.key}"\n${extra}\n\n[signing]\nunsigned = "${unsigned}"\n\n[domain."a.example"]\nselector = "s1"\n\n[domain."b.example"]\nselector = "s1"\n`;
    const keys = [{ domain: 'a.example', selector: 's1' }, { domain: 'b.example', selector: 's1' }];
    proxy = await startProxy('out', toml(`auth_users_file = "${usersFile()}"\nsign_condition = "auth_user"`), keys);
    refusing = await startProxy('out', toml(`auth_users_file = "${usersFile()}"\nsign_condition = "auth_user"`, 'refuse'), keys);
    relaying = await startProxy('out', toml(''), keys);
    dns = await startDnsmasq(proxy.dir.records, ['a.example', 'b.example']);
  });
  after(async () => {
    for (const p of [proxy, refusing, relaying]) await p?.stop();
    await sink?.stop();
    await dns?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A loopback session from 127.0.0.PEER (each test its own address, so throttling is per test), PROXY header first when `as` names a remote client. */
  async function session(p: RunningProxy, peer: number, as?: string): Promise<RawClient> {
    const c = await rawClient(p.port, `127.0.0.${peer}`);
    if (as) c.write(`PROXY TCP4 ${as} 127.0.0.1 40000 25\r\n`);
    assert.match((await c.reply())[0]!, /^220 /);
    return c;
  }

  it('on loopback AUTH PLAIN and LOGIN are offered; a user signs for its own domain (Mail::DKIM verifies it), never for another', async () => {
    const c = await session(proxy, 11);
    c.write('EHLO client.example\r\n');
    assert.ok((await c.reply()).some((l) => /AUTH PLAIN LOGIN/.test(l)));
    c.write(`AUTH PLAIN ${plain('alice', 'alice-password')}\r\n`);
    assert.match((await c.reply())[0]!, /^235 /);
    const before = sink.messages.length;
    assert.match(await send(c, 'Alice <alice@a.example>', 1), /^250 /);
    assert.match(await send(c, 'CEO <ceo@b.example>', 2), /^250 /);
    c.write('QUIT\r\n');
    await c.closed;
    const [own, other] = sink.messages.slice(before);
    assert.match(own!.data.toString('latin1'), /^DKIM-Signature: [^]*d=a\.example/);
    assert.doesNotMatch(other!.data.toString('latin1'), /DKIM-Signature/, 'another domain: relayed unsigned (unsigned = "relay"), never signed');
    const file = join(dir, 'own.eml');
    writeFileSync(file, own!.data);
    assert.deepEqual((await mailDkimVerify([file], dns.port)).map((r) => r.result), ['pass']);
    assert.ok(proxy.logs.some((l) => l['msg'] === 'authenticated' && l['user'] === 'alice'));
    assert.ok(!JSON.stringify(proxy.logs).includes('alice-password'));

    const login = await session(proxy, 12);
    login.write('EHLO client.example\r\n');
    await login.reply();
    login.write('AUTH LOGIN\r\n');
    assert.match((await login.reply())[0]!, /^334 /);
    login.write(`${Buffer.from('alice').toString('base64')}\r\n`);
    assert.match((await login.reply())[0]!, /^334 /);
    login.write(`${Buffer.from('alice-password').toString('base64')}\r\n`);
    assert.match((await login.reply())[0]!, /^235 /);
    login.socket.destroy();
  });

  it('with unsigned = "refuse" another domain is 550 5.7.1 and nothing is relayed; without AUTH nothing is signed', async () => {
    const c = await session(refusing, 13);
    c.write('EHLO client.example\r\n');
    await c.reply();
    c.write(`AUTH PLAIN ${plain('alice', 'alice-password')}\r\n`);
    await c.reply();
    const before = sink.messages.length;
    assert.match(await send(c, 'ceo@b.example', 3), /^550 5\.7\.1 .*alice may not sign for b\.example/);
    assert.equal(sink.messages.length, before);
    c.socket.destroy();
    const anonymous = await session(refusing, 14);
    anonymous.write('EHLO client.example\r\n');
    await anonymous.reply();
    assert.match(await send(anonymous, 'alice@a.example', 4), /^550 5\.7\.1 .*not authenticated/);
    anonymous.socket.destroy();
  });

  it('sign_condition = "can_relay" (the default) signs for clients in allow_clients, as before', async () => {
    const c = await session(relaying, 15);
    c.write('EHLO client.example\r\n');
    assert.ok(!(await c.reply()).some((l) => /AUTH/.test(l)), 'no users: no AUTH');
    const before = sink.messages.length;
    assert.match(await send(c, 'ceo@b.example', 5), /^250 /);
    assert.match(sink.messages[before]!.data.toString('latin1'), /^DKIM-Signature: [^]*d=b\.example/);
    c.socket.destroy();
  });

  it('bad passwords are 535 5.7.8, answered more slowly after the third, and the sixth closes the connection', async () => {
    const c = await session(proxy, 16);
    c.write('EHLO client.example\r\n');
    await c.reply();
    const took: number[] = [];
    for (let k = 1; k <= 5; k++) {
      const t = Date.now();
      c.write(`AUTH PLAIN ${plain('alice', `wrong-${k}`)}\r\n`);
      assert.match((await c.reply(10_000))[0]!, /^535 5\.7\.8 /);
      took.push(Date.now() - t);
    }
    assert.ok(took[3]! >= 400 && took[4]! >= 900, `replies slow down: ${took.join(', ')} ms`);
    c.write(`AUTH PLAIN ${plain('nobody', 'x')}\r\n`);
    assert.match((await c.reply(10_000))[0]!, /^421 4\.7\.0 Too many failed logins/);
    await c.closed;
    assert.ok(proxy.logs.some((l) => l['msg'] === 'authentication failed' && l['user'] === 'nobody'));
    assert.ok(!JSON.stringify(proxy.logs).includes('wrong-3'));
  });

  it('a client elsewhere (named by a PROXY header) is offered AUTH only after STARTTLS', async () => {
    const socket = connect({ host: '127.0.0.1', port: proxy.port });
    socket.write('PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n');
    const c = clientOn(socket);
    assert.match((await c.reply())[0]!, /^220 /);
    c.write('EHLO client.example\r\n');
    const ehlo = await c.reply();
    assert.ok(ehlo.some((l) => /STARTTLS/.test(l)) && !ehlo.some((l) => /AUTH/.test(l)), ehlo.join('|'));
    c.write(`AUTH PLAIN ${plain('alice', 'alice-password')}\r\n`);
    assert.match((await c.reply())[0]!, /^5\d\d /);
    c.write('STARTTLS\r\n');
    assert.match((await c.reply())[0]!, /^220 /);
    socket.removeAllListeners('data');
    const secure = tlsConnect({ socket, rejectUnauthorized: false, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', () => resolve()).once('error', reject));
    const t = clientOn(secure);
    t.write('EHLO client.example\r\n');
    assert.ok((await t.reply()).some((l) => /AUTH PLAIN LOGIN/.test(l)));
    t.write(`AUTH PLAIN ${plain('alice', 'alice-password')}\r\n`);
    assert.match((await t.reply())[0]!, /^235 /);
    secure.destroy();
  });
});

describe('dkim-proxy passwd', () => {
  it('adds and updates a user from standard input, with mode 0600 and no password in the file; a reload of the config reads it', async () => {
    const d = makeConfigDir('[out]\nlisten = "127.0.0.1:10027"\nrelay = "127.0.0.1:10028"\nauth_users_file = "users"\nsign_condition = "auth_user"\n');
    try {
      const add = await cli(['passwd', 'bob', '--domains', 'b.example,c.example', '--config', d.file], 'bob-secret-1\n', d.dir);
      assert.equal(add.code, 0, add.stderr);
      const file = join(d.dir, 'users');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.doesNotMatch(readFileSync(file, 'utf8'), /bob-secret/);
      assert.match(readFileSync(file, 'utf8'), /^bob:scrypt\$16384\$8\$1\$[^:]+:b\.example,c\.example$/m);
      const again = await cli(['passwd', 'bob', '--config', d.file], 'bob-secret-2\n', d.dir);
      assert.equal(again.code, 0, again.stderr);
      const r = await loadConfig(d.file, { cwd: d.dir, env: {} });
      assert.ok(r.ok, r.ok ? '' : r.issues.map((i) => i.message).join('\n'));
      assert.deepEqual(r.config.out!.authUsers!.get('bob')!.domains, ['b.example', 'c.example'], 'domains kept');
      assert.equal((await cli(['passwd', 'bob', '--config', d.file], 'short\n', d.dir)).code, 65);
      assert.equal((await cli(['passwd', 'bob', '--delete', '--config', d.file], '', d.dir)).code, 0);
      assert.doesNotMatch(readFileSync(file, 'utf8'), /^bob:/m);
    } finally {
      rmSync(d.dir, { recursive: true, force: true });
    }
  });

  it('a config whose users file is missing or holds a plain password is refused, naming the key', async () => {
    const d = makeConfigDir('[out]\nlisten = "127.0.0.1:10027"\nrelay = "127.0.0.1:10028"\nauth_users_file = "users"\n');
    try {
      const missing = await loadConfig(d.file, { cwd: d.dir, env: {} });
      assert.ok(!missing.ok);
      assert.match(missing.issues.map((i) => `${i.key}: ${i.message}`).join('\n'), /out\.auth_users_file: cannot read .*ENOENT.*dkim-proxy passwd/);
      writeFileSync(join(d.dir, 'users'), 'bob:hunter2:b.example\n');
      const plainText = await loadConfig(d.file, { cwd: d.dir, env: {} });
      assert.ok(!plainText.ok);
      assert.match(plainText.issues[0]!.message, /users:1: the hash of bob is not an scrypt hash/);
    } finally {
      rmSync(d.dir, { recursive: true, force: true });
    }
  });
});

describe('[signing] match: whose domain picks the rules', () => {
  it('header_from (default), envelope_from (a bounce falls back to From), sender (then From)', async () => {
    const blocks = '[domain."from.example"]\nselector = "s1"\n[domain."envelope.example"]\nselector = "s1"\n[domain."sender.example"]\nselector = "s1"\n';
    const keys = ['from.example', 'envelope.example', 'sender.example'].map((domain) => ({ domain, selector: 's1' }));
    const text = Buffer.from('From: a@from.example\r\nSender: s@sender.example\r\nTo: b@example.net\r\nSubject: match\r\n\r\nbody\r\n', 'latin1');
    const signedAs = async (match: string, mailFrom: string): Promise<string> => {
      const d = makeConfigDir(`[signing]\nmatch = "${match}"\n${blocks}`, keys);
      try {
        const r = await loadConfig(d.file, { cwd: d.dir, env: {} });
        assert.ok(r.ok, r.ok ? '' : r.issues.map((i) => i.message).join('\n'));
        const p = new SigningProcessor({ signing: () => r.config.signing, lookup: zoneLookup(d.records), now: () => 1_790_000_000 });
        const out = await processMessage(p, text, { clientAddress: '127.0.0.1', helo: 'x', mailFrom, rcptTo: ['b@example.net'] });
        return out.report.kind === 'signed' ? out.report.signatures.map((s) => s.d).join(',') : 'unsigned';
      } finally {
        rmSync(d.dir, { recursive: true, force: true });
      }
    };
    assert.equal(await signedAs('header_from', 'bounce@envelope.example'), 'from.example');
    assert.equal(await signedAs('envelope_from', 'bounce@envelope.example'), 'envelope.example');
    assert.equal(await signedAs('envelope_from', ''), 'from.example');
    assert.equal(await signedAs('sender', 'bounce@envelope.example'), 'sender.example');
  });
});
