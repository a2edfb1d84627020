/**
 * Key rotation as the README's "Rotating keys" procedure runs it, with
 * dnsmasq on loopback serving the zone as it changes: rotate new on a fresh
 * config, rotate status through each state as the dates move (--now), a
 * wrong record that never takes over, and a running proxy with two workers
 * that switches to the new selector mid-run, without a restart, while 1,000
 * messages go through at a steady rate.
 */
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { formatKeyRecord, parseKeyRecord, verifyMessage } from '../src/dkim/index.js';
import { createKeyLookup } from '../src/dns/resolver.js';
import { cli } from './helpers/cli.js';
import { makeConfigDir } from './helpers/config-dir.js';
import { startDaemon } from './helpers/daemon.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { dkimpyVerify, mailDkimVerify } from './helpers/peers.js';
import { client } from './helpers/proxy.js';
import { startSink, type Sink } from './helpers/sink.js';
import { testKey } from './helpers/test-keys.js';

const D = 'example.org';
const DAY = 86_400_000;
const dnsList: TestDns[] = [];
after(async () => {
  for (const d of dnsList) await d.stop();
});

/** Serves exactly these records (the zone as it stands), at `at` when given (to replace a server in place). */
async function zone(records: [string, string][], at?: { address: string; port: number }): Promise<TestDns> {
  const d = await startDnsmasq(new Map(records.map(([n, r]) => [n, [r]])), [D], at, 1);
  dnsList.push(d);
  return d;
}

const recordOf = (file: string): string => formatKeyRecord(createPublicKey(readFileSync(file)));

interface Row {
  selector: string;
  published: boolean;
  matches: boolean;
  signing: boolean;
  age_days: number | null;
  next: string;
  next_date: string;
  due: boolean;
}

describe('rotate new and rotate status', () => {
  it('walks a rotation: new key, publish, wait, retire, revoke, remove; a wrong record never takes over', async () => {
    const dir = makeConfigDir(`[dns]\nnegative_ttl = "60s"\n\n[domain."${D}"]\nselector = "s1"\nkey_file = "keys/%{d}/%{s}.key"\n`, [{ domain: D, selector: 's1' }]);
    const s1 = join(dir.dir, 'keys', D, 's1.key');
    const t0 = Date.now();
    const run = (args: string[]) => cli(args, undefined, dir.dir);

    // rotate new on a config with one selector: exactly one new key file, where key_file points, and its record.
    const made = await run(['rotate', 'new', '--config', dir.file, '--domain', D, '--now', new Date(t0).toISOString()]);
    assert.equal(made.code, 0, made.stderr);
    const month = new Date(t0).toISOString().slice(0, 7).replace('-', '');
    const fresh = `s${month}`;
    const freshFile = join(dir.dir, 'keys', D, `${fresh}.key`);
    assert.equal(statSync(freshFile).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(join(dir.dir, 'keys', D)).sort(), [`${fresh}.key`, 's1.key'].sort(), 'exactly one new key file');
    const record = made.stdout.trim().split(/" "/).join('').replace(/^"|"$/g, '');
    const parsed = parseKeyRecord(record);
    assert.ok(parsed.ok && parsed.record.publicKey);
    assert.ok(parsed.record.publicKey.export({ format: 'der', type: 'spki' }).equals(createPublicKey(readFileSync(freshFile)).export({ format: 'der', type: 'spki' })));
    for (const part of made.stdout.trim().match(/"[^"]*"/g)!) assert.ok(part.length - 2 <= 255);
    assert.match(made.stderr, new RegExp(`selectors = \\["${fresh}", "s1"\\]`));
    // A second one in the same month gets a letter.
    const again = await run(['rotate', 'new', '--config', dir.file, '--domain', D, '--now', new Date(t0).toISOString(), '--zone']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`^${fresh}b\\._domainkey\\.${D.replace('.', '\\.')}\\. IN TXT \\( "v=DKIM1; k=rsa; p=`));

    // The operator lists the new selector first.
    writeFileSync(dir.file, readFileSync(dir.file, 'utf8').replace('selector = "s1"', `selectors = ["${fresh}", "s1"]`));
    const status = async (dns: TestDns, at: number): Promise<{ code: number; rows: Row[] }> => {
      const r = await run(['rotate', 'status', '--config', dir.file, '--dns-server', dns.server, '--json', '--now', new Date(at).toISOString()]);
      return { code: r.code, rows: JSON.parse(r.stdout) as Row[] };
    };
    const pick = (rows: Row[], s: string): Row => rows.find((r) => r.selector === s)!;

    // 1. Only s1 is published: publish is due for the new one.
    const before = await zone([[`s1._domainkey.${D}`, recordOf(s1)]]);
    const a = await status(before, t0);
    assert.equal(a.code, 1);
    assert.deepEqual([pick(a.rows, fresh).published, pick(a.rows, fresh).matches, pick(a.rows, fresh).signing, pick(a.rows, fresh).next, pick(a.rows, fresh).due], [false, false, false, 'publish', true]);
    assert.deepEqual([pick(a.rows, 's1').signing, pick(a.rows, 's1').next], [true, 'none']);
    assert.equal(typeof pick(a.rows, 's1').age_days, 'number');
    assert.equal((await run(['dns-check', '--config', dir.file, '--dns-server', before.server])).code, 1);

    // A wrong key published for the new selector: reported, and never signing.
    const wrong = await zone([[`s1._domainkey.${D}`, recordOf(s1)], [`${fresh}._domainkey.${D}`, formatKeyRecord(testKey('rsa-2048').key)]]);
    const w = await status(wrong, t0);
    assert.equal(w.code, 1);
    assert.deepEqual([pick(w.rows, fresh).published, pick(w.rows, fresh).matches, pick(w.rows, fresh).signing, pick(w.rows, fresh).next], [true, false, false, 'publish']);
    const wrongCheck = await run(['dns-check', '--config', dir.file, '--dns-server', wrong.server]);
    assert.equal(wrongCheck.code, 1);
    assert.match(wrongCheck.stdout, /mismatch/);

    // 2. Both published: the new one signs; the old one waits out the proxies' cached answers.
    const both = await zone([[`s1._domainkey.${D}`, recordOf(s1)], [`${fresh}._domainkey.${D}`, recordOf(freshFile)]]);
    assert.equal((await run(['dns-check', '--config', dir.file, '--dns-server', both.server])).code, 0);
    const b = await status(both, t0);
    assert.equal(b.code, 0);
    assert.deepEqual([pick(b.rows, fresh).signing, pick(b.rows, fresh).next], [true, 'none']);
    assert.deepEqual([pick(b.rows, 's1').signing, pick(b.rows, 's1').next, pick(b.rows, 's1').due], [false, 'wait', false]);
    assert.ok(existsSync(`${freshFile}.signing-since`));
    // 3. An hour on: retire, due seven days after the switch.
    const c = await status(both, t0 + 3_600_000);
    assert.equal(c.code, 0);
    assert.deepEqual([pick(c.rows, 's1').next, pick(c.rows, 's1').due, pick(c.rows, 's1').next_date.slice(0, 10)], ['retire', false, new Date(t0 + 7 * DAY).toISOString().slice(0, 10)]);
    // 4. Eight days on: revoke is due.
    const d8 = await status(both, t0 + 8 * DAY);
    assert.equal(d8.code, 1);
    assert.deepEqual([pick(d8.rows, 's1').next, pick(d8.rows, 's1').due], ['revoke', true]);
    // 5. Revoked (empty p=): remove is due.
    const revoked = await zone([[`s1._domainkey.${D}`, 'v=DKIM1; p='], [`${fresh}._domainkey.${D}`, recordOf(freshFile)]]);
    const e = await status(revoked, t0 + 8 * DAY);
    assert.equal(e.code, 1);
    assert.equal(pick(e.rows, 's1').next, 'remove');
    // 6. Out of the config, and its key put away (kept in retired/).
    assert.equal((await run(['rotate', 'retire', '--config', dir.file, '--domain', D, '--selector', 's1'])).code, 64, 'still listed: refused');
    writeFileSync(dir.file, readFileSync(dir.file, 'utf8').replace(`selectors = ["${fresh}", "s1"]`, `selectors = ["${fresh}"]`));
    const retired = await run(['rotate', 'retire', '--config', dir.file, '--domain', D, '--selector', 's1']);
    assert.equal(retired.code, 0, retired.stderr);
    assert.ok(!existsSync(s1) && existsSync(join(dir.dir, 'keys', D, 'retired', 's1.key')));
    const f = await status(revoked, t0 + 8 * DAY);
    assert.equal(f.code, 0);
    assert.deepEqual(f.rows.map((r) => r.selector), [fresh]);

    // max_key_age: a key older than it is due for rotation, and a warning at load.
    writeFileSync(dir.file, readFileSync(dir.file, 'utf8').replace('[domain.', '[signing]\nmax_key_age = "1d"\n\n[domain.'));
    const old = await status(revoked, t0 + 2 * DAY);
    assert.equal(old.code, 1);
    assert.deepEqual([pick(old.rows, fresh).next, pick(old.rows, fresh).due], ['rotate', true]);
    const checked = await run(['check-config', '--config', dir.file]);
    assert.equal(checked.code, 0);
    assert.doesNotMatch(checked.stderr, /over max_key_age/, 'a fresh key is not old yet');
  });
});

describe('a running proxy switches selectors by itself', () => {
  it('1,000 messages at a steady rate through two workers: old until new is served, then new, none unsigned, every signature good when made', async () => {
    let sink: Sink | undefined;
    const arrivals: { at: number; selector: string | undefined; data: Buffer }[] = [];
    sink = await startSink({
      data: (data) => {
        arrivals.push({ at: Date.now(), selector: /^DKIM-Signature:[^]*?\bs=([^;\s]+)/m.exec(data.toString('latin1'))?.[1], data });
        return undefined;
      },
    });
    const dir = makeConfigDir(
      `workers = 2\n\n[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\nmax_connections_per_client = 100\n\n[dns]\nservers = ["__DNS__"]\ncache_ttl = "1s"\nnegative_ttl = "1s"\ntimeout_ms = 500\n\n[domain."${D}"]\nselectors = ["new", "old"]\npolicy = "TempFailIfNotInDNS"\n`,
      [{ domain: D, selector: 'new' }, { domain: D, selector: 'old' }],
    );
    const dns = await zone([[`old._domainkey.${D}`, dir.records.get(`old._domainkey.${D}`)![0]!]]);
    writeFileSync(dir.file, readFileSync(dir.file, 'utf8').replace('__DNS__', dns.server));
    const daemon = startDaemon(dir.file, dir.dir);
    let published = Infinity;
    try {
      const port = await daemon.port('out');
      const TOTAL = 1000;
      const CONNECTIONS = 4;
      let next = 0;
      let deferred = 0;
      const message = (k: number): Buffer => Buffer.from(`From: a@${D}\r\nTo: b@example.net\r\nSubject: rotation ${k}\r\nMessage-ID: <r${k}@${D}>\r\n\r\nmessage ${k}\r\n`, 'latin1');
      const sender = async (): Promise<void> => {
        const c = await client(port);
        try {
          while (next < TOTAL) {
            const k = next++;
            const started = Date.now();
            // A 451 (the DNS restart below) is retried, as Postfix would, a bounded number of times.
            for (let attempt = 0; ; attempt++) {
              const mail = await c.command(`MAIL FROM:<a@${D}>`);
              const rcpt = mail.code === 250 ? await c.command('RCPT TO:<b@example.net>') : mail;
              const data = rcpt.code === 250 ? await c.data([message(k)], 1) : [rcpt];
              const code = data[0]!.code;
              if (code === 250) break;
              assert.equal(Math.floor(code / 100), 4, `message ${k}: ${JSON.stringify(data)}`);
              deferred++;
              if (mail.code === 250) await c.command('RSET');
              assert.ok(attempt < 50, `message ${k} deferred 50 times`);
              await new Promise((r) => setTimeout(r, 20));
            }
            // A steady rate: about 16 messages per connection per second.
            await new Promise((r) => setTimeout(r, Math.max(0, 60 - (Date.now() - started))));
            if (k === 300) {
              // The new record appears: the zone is reloaded in place, after an outage longer than the
              // cache TTL, so that lookups fail meanwhile: TempFailIfNotInDNS answers 451, and the client retries.
              await dns.stop();
              await new Promise((r) => setTimeout(r, 1500));
              // The earliest the new record can be served: the new server starts now.
              published = Date.now();
              await zone([[`old._domainkey.${D}`, dir.records.get(`old._domainkey.${D}`)![0]!], [`new._domainkey.${D}`, dir.records.get(`new._domainkey.${D}`)![0]!]], { address: '127.0.0.1', port: dns.port });
            }
          }
        } finally {
          await c.quit();
        }
      };
      await Promise.all(Array.from({ length: CONNECTIONS }, sender));
      assert.equal(arrivals.length, TOTAL, 'every message arrived once');
      assert.ok(arrivals.every((a) => a.selector !== undefined), 'none unsigned');
      // Never signed with the new selector before its record was served.
      assert.deepEqual(arrivals.filter((a) => a.selector === 'new' && a.at < published).length, 0);
      const after = arrivals.filter((a) => a.at > published + 4000);
      assert.ok(after.length > 100, `${after.length} messages after the switch window`);
      assert.ok(after.every((a) => a.selector === 'new'), 'within the cache TTL every worker signs with new');
      assert.ok(arrivals.filter((a) => a.selector === 'old').length > 100);
      // Told once per worker that switched.
      const told = daemon.lines.filter((l) => l['msg'] === 'signing selector changed');
      assert.ok(told.length >= 1 && told.length <= 2, JSON.stringify(told));
      assert.ok(told.every((l) => l['from'] === 'old' && l['to'] === 'new'));
      // Every signature verifies (the old record stays published): ours on all, Mail::DKIM and dkimpy on a sample of each selector.
      const lookup = createKeyLookup({ servers: [dnsList[dnsList.length - 1]!.server] });
      for (const a of arrivals) {
        const outcomes = await verifyMessage(a.data, lookup, Math.floor(Date.now() / 1000));
        assert.deepEqual(outcomes.map((o) => o.result), ['pass'], `selector ${a.selector}`);
      }
      const sample = [...arrivals.filter((a) => a.selector === 'old').slice(0, 3), ...arrivals.filter((a) => a.selector === 'new').slice(-3)].map((a, k) => {
        const file = join(dir.dir, `sample-${k}.eml`);
        writeFileSync(file, a.data);
        return file;
      });
      const port53 = dnsList[dnsList.length - 1]!.port;
      for (const r of [...(await mailDkimVerify(sample, port53)), ...(await dkimpyVerify(sample, port53))]) assert.equal(r.result, 'pass', JSON.stringify(r));
      process.stdout.write(`# rotation run: ${arrivals.filter((a) => a.selector === 'old').length} old, ${arrivals.filter((a) => a.selector === 'new').length} new, ${deferred} deferred and retried\n`);
    } finally {
      await daemon.stop();
      await sink.stop();
    }
  });
});
