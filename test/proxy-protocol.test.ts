/**
 * Behind a load balancer: the PROXY header (v1 and v2) from a listed
 * balancer names the client that allow_clients, the log and XFORWARD then
 * use; a listed balancer without a valid header is closed before any reply;
 * a header from anyone else is never used. Then for real: Debian's HAProxy
 * on loopback in front of two `dkim-proxy run` instances, with send-proxy-v2
 * and health checks on /readyz, driven from another loopback address.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyMessage } from '../src/dkim/index.js';
import { makeConfigDir } from './helpers/config-dir.js';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { createKeyLookup } from '../src/dns/resolver.js';
import { eventually } from './helpers/eventually.js';
import { freeTcpPorts } from './helpers/ports.js';
import { startProxy, type RunningProxy } from './helpers/proxy.js';
import { rawClient, untilGreeting, type RawClient } from './helpers/raw-client.js';
import { startSink, type Sink } from './helpers/sink.js';

const D = 'example.com';
const MESSAGE = `From: a@${D}\r\nTo: b@example.net\r\nSubject: through a balancer\r\n\r\nhello\r\n`;

/** One SMTP transaction on a raw connection whose greeting has been read; the DATA reply. */
async function transaction(c: RawClient): Promise<string[]> {
  for (const command of ['EHLO client.example', `MAIL FROM:<a@${D}>`, 'RCPT TO:<b@example.net>', 'DATA']) {
    c.write(`${command}\r\n`);
    const r = await c.reply();
    if (!/^[23]/.test(r[0]!)) return r;
  }
  c.write(`${MESSAGE}.\r\n`);
  return c.reply();
}

function v2Header(src: number[], sport: number): Buffer {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c]);
  const body = Buffer.alloc(12);
  Buffer.from(src).copy(body, 0);
  Buffer.from([127, 0, 0, 1]).copy(body, 4);
  body.writeUInt16BE(sport, 8);
  body.writeUInt16BE(25, 10);
  return Buffer.concat([sig, body]);
}

describe('the PROXY protocol on a listener', () => {
  let sink: Sink;
  let proxy: RunningProxy;
  let unlisted: RunningProxy;
  before(async () => {
    sink = await startSink();
    const base = (from: string) =>
      `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\nallow_clients = ["192.0.2.0/24", "2001:db8::/32"]\nproxy_protocol_from = ["${from}"]\ncommand_timeout = "2s"\n\n[domain."${D}"]\nselector = "s1"\n`;
    proxy = await startProxy('out', base('127.0.0.1/32'), [{ domain: D, selector: 's1' }]);
    unlisted = await startProxy('out', base('10.0.0.0/8').replace('allow_clients = ["192.0.2.0/24", "2001:db8::/32"]', 'allow_clients = ["127.0.0.1/32"]'), [{ domain: D, selector: 's1' }]);
  });
  after(async () => {
    await proxy?.stop();
    await unlisted?.stop();
    await sink?.stop();
  });

  it('v1 and v2 from a listed balancer: the client it names is allowed, logged and forwarded; the balancer itself is not in allow_clients', async () => {
    for (const [header, client] of [
      [Buffer.from('PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n'), '192.0.2.7'],
      [v2Header([192, 0, 2, 8], 40001), '192.0.2.8'],
      [Buffer.from('PROXY TCP6 2001:db8::9 ::1 40002 25\r\n'), '2001:db8::9'],
    ] as const) {
      const before = sink.messages.length;
      const c = await rawClient(proxy.port);
      c.write(header);
      assert.match((await c.reply())[0]!, /^220 /);
      assert.match((await transaction(c))[0]!, /^250 /);
      c.socket.end();
      await eventually('delivered', () => sink.messages.length === before + 1, { timeoutMs: 5000, everyMs: 10 });
      assert.match(sink.messages[before]!.data.toString('latin1'), /^DKIM-Signature: /);
      await eventually('logged', () => proxy.logs.some((l) => l['client'] === client && l['msg'] === 'message relayed'), { timeoutMs: 5000, everyMs: 10 });
      // The sink (smtp-server) reads IPV6:2001:db8::9 as the bare address.
      assert.equal(sink.messages[before]!.xforward['ADDR'], client);
    }
  });

  it('a listed balancer that sends no header, or a malformed one, is closed within seconds and never answered', async () => {
    for (const send of [undefined, 'PROXY TCP4 not-an-address 127.0.0.1 1 25\r\n', 'EHLO hello\r\n', Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x31, 0x11, 0, 0])]) {
      const c = await rawClient(proxy.port);
      const started = Date.now();
      if (send !== undefined) c.write(send);
      await c.closed;
      assert.deepEqual(c.lines, [], `nothing is said to ${JSON.stringify(send)}`);
      assert.ok(Date.now() - started < 4000, `closed after ${Date.now() - started} ms`);
    }
    assert.ok(proxy.logs.some((l) => l['msg'] === 'load balancer connection closed: no valid PROXY header' && /no PROXY header within 2000 ms/.test(String(l['reason']))));
  });

  it('a PROXY header from a peer that is not a listed balancer is never used: it is early talk, refused', async () => {
    const before = sink.messages.length;
    const c = await rawClient(unlisted.port);
    c.write('PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n');
    const first = await c.reply();
    assert.match(first[0]!, /^421 /, JSON.stringify(first));
    await c.closed;
    assert.equal(sink.messages.length, before);
    assert.ok(!unlisted.logs.some((l) => l['client'] === '192.0.2.7'));
  });
});

describe('the PROXY protocol on in', () => {
  it('SPF is checked for the client the header names, and the log says so', async () => {
    const sink = await startSink();
    const dns = await startDnsmasq(new Map([[D, ['v=spf1 ip4:192.0.2.0/24 -all']]]), [D]);
    const proxy = await startProxy(
      'in',
      `[in]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\nauthserv_id = "mx.test"\nallow_clients = ["192.0.2.0/24"]\nproxy_protocol_from = ["127.0.0.1/32"]\nchecks = ["spf"]\n\n[dns]\nservers = ["${dns.server}"]\n`,
    );
    try {
      const c = await rawClient(proxy.port);
      c.write('PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n');
      assert.match((await c.reply())[0]!, /^220 /);
      assert.match((await transaction(c))[0]!, /^250 /);
      c.socket.destroy();
      await eventually('delivered', () => sink.messages.length === 1, { timeoutMs: 5000, everyMs: 10 });
      assert.match(sink.messages[0]!.data.toString('latin1'), /^Authentication-Results: mx\.test;\r\n\tspf=pass smtp\.mailfrom=a@example\.com \(example\.com: matched ip4:192\.0\.2\.0\/24\)/);
      assert.ok(proxy.logs.some((l) => l['client'] === '192.0.2.7' && l['msg'] === 'message relayed'));
    } finally {
      await proxy.stop();
      await sink.stop();
      await dns.stop();
    }
  });
});

describe('behind HAProxy', () => {
  let dir: string;
  let dns: TestDns;
  let sink: Sink;
  let haproxy: ChildProcess | undefined;
  let front: number;
  let metricsPorts: number[];
  let configs: ReturnType<typeof makeConfigDir>[];
  const daemons: Daemon[] = [];
  let haproxyErr = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-haproxy-'));
    sink = await startSink();
    const [f, a, b, ma, mb] = await freeTcpPorts(5);
    front = f!;
    metricsPorts = [ma!, mb!];
    configs = [
      [a!, ma!],
      [b!, mb!],
    ].map(([port, metrics]) =>
      makeConfigDir(
        `workers = 1\n[out]\nlisten = "127.0.0.1:${port}"\nrelay = "127.0.0.1:${sink.port}"\nallow_clients = ["127.0.0.2/32"]\nproxy_protocol_from = ["127.0.0.1/32"]\n\n[metrics]\nlisten = "127.0.0.1:${metrics}"\n\n[domain."${D}"]\nselector = "s1"\n`,
        [{ domain: D, selector: 's1' }],
      ),
    );
    // Both instances sign with one key, as a fleet does (one record in DNS).
    writeFileSync(join(configs[1]!.dir, 'keys', D, 's1.key'), readKey(configs[0]!.dir), { mode: 0o600 });
    dns = await startDnsmasq(configs[0]!.records, [D]);
    for (const c of configs) {
      const d = startDaemon(c.file, c.dir);
      daemons.push(d);
      await d.port('out');
    }
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(
      cfg,
      [
        'global',
        '  maxconn 200',
        'defaults',
        '  mode tcp',
        '  timeout connect 2s',
        '  timeout client 30s',
        '  timeout server 30s',
        '  retries 3',
        '  option redispatch',
        'frontend smtp',
        `  bind 127.0.0.1:${front}`,
        '  default_backend dkim',
        'backend dkim',
        '  balance roundrobin',
        '  option httpchk GET /readyz',
        '  http-check expect status 200',
        `  server a 127.0.0.1:${a} send-proxy-v2 check port ${ma} inter 300 fall 2 rise 1`,
        `  server b 127.0.0.1:${b} send-proxy-v2 check port ${mb} inter 300 fall 2 rise 1`,
        '',
      ].join('\n'),
    );
    haproxy = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
    haproxy.stderr!.on('data', (d: Buffer) => (haproxyErr += d.toString()));
    await untilGreeting(front, '127.0.0.2', 15_000, () => haproxyErr);
  });
  after(async () => {
    haproxy?.kill('SIGTERM');
    for (const d of daemons) await d.stop();
    await sink?.stop();
    await dns?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('two instances behind send-proxy-v2 with /readyz checks: the original client is allowed and logged, every message signed, both instances used', async () => {
    const before = sink.messages.length;
    for (let k = 0; k < 20; k++) {
      const c = await rawClient(front, '127.0.0.2');
      assert.match((await c.reply())[0]!, /^220 /);
      assert.match((await transaction(c))[0]!, /^250 /);
      c.write('QUIT\r\n');
      await c.closed;
    }
    await eventually('all delivered', () => sink.messages.length === before + 20, { timeoutMs: 10_000, everyMs: 20 });
    const lookup = createKeyLookup({ servers: [dns.server] });
    for (const m of sink.messages.slice(before)) assert.deepEqual((await verifyMessage(m.data, lookup, Math.floor(Date.now() / 1000))).map((o) => o.result), ['pass']);
    for (const d of daemons) {
      const relayed = d.lines.filter((l) => l['client'] === '127.0.0.2' && l['msg'] === 'message relayed');
      assert.ok(relayed.length >= 5, `each instance took a share: ${relayed.length}`);
    }
  });

  it('2,000 messages with one instance killed (SIGKILL) mid-run and restarted: what the client saw accepted arrives, once unless it was retried, signed; the rest go through the survivor; the health check takes the dead one out and back', async () => {
    const TOTAL = 2000;
    const start = sink.messages.length;
    const accepted = new Map<number, number>();
    let next = 0;
    let failures = 0;
    let killedAt = -1;
    let readyzMs = 0;
    const text = (k: number): string => `From: a@${D}\r\nTo: b@example.net\r\nSubject: run ${k}\r\nMessage-ID: <run${k}@${D}>\r\n\r\nmessage ${k}\r\n`;
    const one = async (c: RawClient, k: number): Promise<string> => {
      for (const command of ['RSET', `MAIL FROM:<a@${D}>`, 'RCPT TO:<b@example.net>', 'DATA']) {
        c.write(`${command}\r\n`);
        const r = await c.reply(10_000);
        if (!/^[23]/.test(r[0]!)) return r[0]!;
      }
      c.write(`${text(k)}.\r\n`);
      return (await c.reply(10_000))[0]!;
    };
    const open = async (): Promise<RawClient> => {
      const c = await rawClient(front, '127.0.0.2');
      assert.match((await c.reply(10_000))[0]!, /^220 /);
      c.write('EHLO client.example\r\n');
      await c.reply(10_000);
      return c;
    };
    const worker = async (): Promise<void> => {
      let c: RawClient | undefined;
      while (next < TOTAL) {
        const k = next++;
        if (k === 700 && killedAt === -1) {
          killedAt = k;
          daemons[0]!.child.kill('SIGKILL');
        }
        if (k === 1000) {
          // Under load, the survivor's readiness answers quickly.
          const t = Date.now();
          const res = await fetch(`http://127.0.0.1:${metricsPorts[1]}/readyz`);
          readyzMs = Date.now() - t;
          assert.equal(res.status, 200);
        }
        if (k === 1200) {
          const d = startDaemon(configs[0]!.file, configs[0]!.dir);
          daemons.push(d);
          await d.port('out');
        }
        for (let attempt = 1; ; attempt++) {
          assert.ok(attempt <= 20, `message ${k} not accepted in 20 attempts: ${haproxyErr}`);
          try {
            c ??= await open();
            const reply = await one(c, k);
            if (/^250 /.test(reply)) {
              accepted.set(k, attempt);
              break;
            }
            assert.match(reply, /^4/, `message ${k}: ${reply}`);
          } catch {
            c?.socket.destroy();
            c = undefined;
          }
          failures++;
        }
      }
      c?.write('QUIT\r\n');
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    assert.equal(accepted.size, TOTAL);
    await eventually('everything accepted has arrived', () => new Set(sink.messages.slice(start).map((m) => /Subject: run (\d+)/.exec(m.data.toString('latin1'))?.[1])).size === TOTAL, { timeoutMs: 15_000, everyMs: 50 });
    const arrivals = new Map<number, number>();
    for (const m of sink.messages.slice(start)) {
      const k = Number(/Subject: run (\d+)/.exec(m.data.toString('latin1'))![1]);
      arrivals.set(k, (arrivals.get(k) ?? 0) + 1);
    }
    const duplicates = [...arrivals].filter(([, n]) => n > 1).map(([k]) => k);
    // A message is delivered twice only when the instance died after relaying it and before the client heard: a retried one.
    for (const k of duplicates) assert.ok(accepted.get(k)! > 1, `message ${k} arrived twice but was accepted at the first try`);
    // One key for all: asked of DNS once, not 2,000 times at once.
    const dnsLookup = createKeyLookup({ servers: [dns.server] });
    const asked = new Map<string, ReturnType<typeof dnsLookup>>();
    const lookup = (name: string): ReturnType<typeof dnsLookup> => asked.get(name) ?? asked.set(name, dnsLookup(name)).get(name)!;
    const bad: string[] = [];
    for (const m of sink.messages.slice(start)) {
      const r = (await verifyMessage(m.data, lookup, Math.floor(Date.now() / 1000))).map((o) => o.result).join();
      if (r !== 'pass') bad.push(r);
    }
    assert.deepEqual(bad, []);
    const restarted = daemons[daemons.length - 1]!;
    await eventually('the restarted instance is back in rotation', async () => {
      const c = await open();
      await one(c, TOTAL + 1);
      c.socket.destroy();
      return restarted.lines.some((l) => l['msg'] === 'message relayed');
    }, { timeoutMs: 15_000, everyMs: 100 });
    assert.ok(readyzMs < 2000, `/readyz took ${readyzMs} ms under load`);
    // HAProxy's own account: the killed instance went down on its health check and came back up.
    assert.match(haproxyErr, /Server dkim\/a is DOWN/);
    await eventually('HAProxy has the restarted instance up', () => /Server dkim\/a is UP/.test(haproxyErr), { timeoutMs: 10_000, everyMs: 50, detail: () => haproxyErr });
    const retried = [...accepted.values()].filter((n) => n > 1).length;
    process.stdout.write(`# HAProxy run: ${TOTAL} accepted, ${retried} after a retry (${failures} failed attempts), ${duplicates.length} delivered twice, /readyz ${readyzMs} ms\n`);
  });
});

function readKey(configDir: string): Buffer {
  return readFileSync(join(configDir, 'keys', D, 's1.key'));
}
