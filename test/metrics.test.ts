/**
 * The metrics and health endpoint of the real daemon, with two workers (the
 * primary sums theirs): after known traffic through out and in, every counter
 * says what was sent; /healthz and /readyz answer, /readyz turns 503 when the
 * next hop goes away; reloads are counted; `dkim-proxy stats` prints the same
 * figures (table and --json) and says so when nothing answers.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { parseExposition, total, type Sample } from '../src/ops/scrape.js';
import { cli } from './helpers/cli.js';
import { makeConfigDir, type ConfigDir } from './helpers/config-dir.js';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { freeTcpPort } from './helpers/ports.js';
import { send } from './helpers/proxy.js';
import { startSink, type Sink } from './helpers/sink.js';

const message = (from: string, n: number, extra = ''): string =>
  `From: <${from}>\r\nTo: <bob@example.net>\r\nSubject: metrics ${n}${extra}\r\nMessage-ID: <m${n}@test>\r\n\r\nBody of message ${n}.\r\n`;

describe('metrics, health and stats', () => {
  let sink: Sink;
  let dns: TestDns;
  let dir: ConfigDir;
  let daemon: Daemon;
  let ports: { out: number; in: number; metrics: number };
  const toml = (extra = ''): string => `workers = 2
[out]
listen = "127.0.0.1:0"
relay = "127.0.0.1:${sink.port}"
[in]
listen = "127.0.0.1:0"
relay = "127.0.0.1:${sink.port}"
authserv_id = "mx.test"
[dns]
servers = ["${dns.server}"]
timeout_ms = 2000
[metrics]
listen = "127.0.0.1:0"
[domain."example.com"]
selector = "s1"
${extra}`;

  before(async () => {
    // Messages whose subject says so are refused by the next hop.
    sink = await startSink({ data: (m) => (m.toString('latin1').match(/^Subject: metrics \d+ refused/m) ? 554 : undefined) });
    dir = makeConfigDir('', [{ domain: 'example.com', selector: 's1' }]);
    dns = await startDnsmasq(dir.records, ['example.com']);
    writeFileSync(dir.file, toml());
    daemon = startDaemon(dir.file, dir.dir);
    const opsLine = await daemon.waitFor((l) => l['msg'] === 'metrics and health endpoint listening');
    ports = { out: await daemon.port('out'), in: await daemon.port('in'), metrics: Number(String(opsLine['listen']).split(':').pop()) };
  });
  after(async () => {
    await daemon?.stop();
    await sink?.stop();
    await dns?.stop();
  });

  const get = (path: string): Promise<Response> => fetch(`http://127.0.0.1:${ports.metrics}${path}`, { signal: AbortSignal.timeout(10_000) });
  const scrape = async (): Promise<Sample[]> => parseExposition(await (await get('/metrics')).text());

  it('counts what was signed, verified and relayed, summed over both workers', async () => {
    // out: 6 signed (one of which the next hop refuses), 2 unsigned (no rule for their domain).
    for (let n = 0; n < 5; n++) assert.equal((await send(ports.out, 'alice@example.com', ['bob@example.net'], message('alice@example.com', n))).data![0]!.code, 250);
    assert.equal((await send(ports.out, 'alice@example.com', ['bob@example.net'], message('alice@example.com', 5, ' refused'))).data![0]!.code, 554);
    for (let n = 6; n < 8; n++) assert.equal((await send(ports.out, 'carol@other.example', ['bob@example.net'], message('carol@other.example', n))).data![0]!.code, 250);
    const signed = sink.messages.slice(0, 5).map((m) => m.data.toString('latin1'));
    assert.equal(signed.length, 5);

    // in: 3 that pass, 1 tampered (fail), 1 unsigned (none).
    for (const m of signed.slice(0, 3)) assert.equal((await send(ports.in, 'alice@example.com', ['bob@example.net'], m)).data![0]!.code, 250);
    assert.equal((await send(ports.in, 'alice@example.com', ['bob@example.net'], signed[3]!.replace('Body of message', 'Body of another message'))).data![0]!.code, 250);
    assert.equal((await send(ports.in, 'carol@other.example', ['bob@example.net'], message('carol@other.example', 9))).data![0]!.code, 250);

    const s = await scrape();
    const t = (name: string, labels: Record<string, string> = {}): number => total(s, name, labels);
    assert.equal(t('dkim_proxy_workers'), 2);
    assert.equal(t('dkim_proxy_signing_total', { domain: 'example.com', result: 'signed' }), 6);
    assert.equal(t('dkim_proxy_signing_total', { domain: 'other.example', result: 'unsigned' }), 2);
    assert.equal(t('dkim_proxy_signing_total'), 8);
    assert.equal(t('dkim_proxy_signatures_total', { domain: 'example.com', selector: 's1', algorithm: 'rsa-sha256' }), 6);
    assert.equal(t('dkim_proxy_verifications_total', { domain: 'example.com', result: 'pass' }), 3);
    assert.equal(t('dkim_proxy_verifications_total', { domain: 'example.com', result: 'fail' }), 1);
    assert.equal(t('dkim_proxy_verifications_total', { domain: 'none', result: 'none' }), 1);
    assert.equal(t('dkim_proxy_verifications_total'), 5);
    assert.equal(t('dkim_proxy_messages_total', { kind: 'out', class: '2xx' }), 7);
    assert.equal(t('dkim_proxy_messages_total', { kind: 'out', class: '5xx' }), 1);
    assert.equal(t('dkim_proxy_messages_total', { kind: 'in', class: '2xx' }), 5);
    assert.equal(t('dkim_proxy_relay_replies_total', { kind: 'out', class: '2xx' }), 7);
    assert.equal(t('dkim_proxy_relay_replies_total', { kind: 'out', class: '5xx' }), 1);
    assert.equal(t('dkim_proxy_relay_replies_total', { kind: 'in', class: '2xx' }), 5);
    assert.equal(t('dkim_proxy_transaction_seconds_count', { kind: 'out' }), 8);
    assert.equal(t('dkim_proxy_transaction_seconds_count', { kind: 'in' }), 5);
    assert.equal(t('dkim_proxy_message_bytes_count', { kind: 'out' }), 8);
    const outBytes = [0, 1, 2, 3, 4, 6, 7].map((n) => message(n < 5 ? 'alice@example.com' : 'carol@other.example', n).length).reduce((a, b) => a + b, 0) + message('alice@example.com', 5, ' refused').length;
    assert.equal(t('dkim_proxy_message_bytes_sum', { kind: 'out' }), outBytes);
    assert.equal(t('dkim_proxy_transactions_in_flight'), 0);
    // Four signed messages came in for one key: each worker asks DNS once at most, the rest are hits.
    const hits = t('dkim_proxy_dns_cache_total', { result: 'hit' });
    const misses = t('dkim_proxy_dns_cache_total', { result: 'miss' });
    assert.equal(hits + misses, 4);
    assert.ok(misses >= 1 && misses <= 2, `misses: ${misses}`);
  });

  it('prints the same figures with `dkim-proxy stats`, as a table and as JSON', async () => {
    // stats finds the endpoint from a config's [metrics] listen (the daemon's says port 0: chosen at start).
    const statsConfig = `${dir.dir}/stats.toml`;
    writeFileSync(statsConfig, toml().replace('[metrics]\nlisten = "127.0.0.1:0"', `[metrics]\nlisten = "127.0.0.1:${ports.metrics}"`));
    const json = await cli(['stats', '--config', statsConfig, '--json'], undefined, dir.dir);
    assert.equal(json.code, 0, json.stderr);
    const stats = JSON.parse(json.stdout) as { workers: number; signing: { domain: string; result: string; count: number }[]; verifications: { domain: string; result: string; count: number }[]; latency: Record<string, { count: number }> };
    assert.equal(stats.workers, 2);
    assert.deepEqual(stats.signing, [
      { domain: 'example.com', result: 'signed', count: 6 },
      { domain: 'other.example', result: 'unsigned', count: 2 },
    ]);
    assert.deepEqual(stats.verifications, [
      { domain: 'example.com', result: 'pass', count: 3 },
      { domain: 'example.com', result: 'fail', count: 1 },
      { domain: 'none', result: 'none', count: 1 },
    ]);
    assert.equal(stats.latency['out']!.count, 8);

    const text = await cli(['stats', '--url', `http://127.0.0.1:${ports.metrics}/metrics`]);
    assert.equal(text.code, 0, text.stderr);
    assert.doesNotMatch(text.stdout, /\x1b\[/, 'no colour codes into a pipe');
    assert.ok(text.stdout.includes('domain         signed  unsigned\nexample.com         6         0\nother.example       0         2\n'), text.stdout);
    assert.ok(text.stdout.includes('domain       pass  fail  none\nexample.com     3     1     0\nnone            0     0     1\n'), text.stdout);
    assert.match(text.stdout, /^to clients 5xx +1 +0$/m);
  });

  it('answers /healthz, and /readyz by the next hop: 200 while it is up, 503 naming it when it is not', async () => {
    const health = await get('/healthz');
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'ok\n');
    const ready = await get('/readyz');
    assert.equal(ready.status, 200);
    const body = (await ready.json()) as { ready: boolean; checks: Record<string, string> };
    assert.deepEqual(body, {
      ready: true,
      checks: { config: 'ok', 'out listener': 'ok', 'in listener': 'ok', [`out next hop 127.0.0.1:${sink.port}`]: 'ok', [`in next hop 127.0.0.1:${sink.port}`]: 'ok' },
    });
    assert.equal((await get('/nothing')).status, 404);
    const healthy = await cli(['health', '--url', `http://127.0.0.1:${ports.metrics}/readyz`, '--ready']);
    assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
    assert.match(healthy.stdout, /^ready  http:\/\/127\.0\.0\.1:\d+\/readyz  config: ok, out listener: ok/);

    const port = sink.port;
    await sink.stop();
    const down = await get('/readyz');
    assert.equal(down.status, 503);
    const why = (await down.json()) as { ready: boolean; checks: Record<string, string> };
    assert.equal(why.ready, false);
    assert.equal(why.checks[`out next hop 127.0.0.1:${port}`], 'ECONNREFUSED');
    assert.equal((await get('/healthz')).status, 200, 'the process is still up');
    const notReady = await cli(['health', '--url', `http://127.0.0.1:${ports.metrics}/readyz`, '--ready']);
    assert.equal(notReady.code, 1);
    assert.ok(notReady.stdout.startsWith('HTTP 503  '), notReady.stdout);
    assert.ok(notReady.stdout.includes(`out next hop 127.0.0.1:${port}: ECONNREFUSED`), notReady.stdout);
    // A message while the next hop is gone: 451 to the client, counted as unreachable.
    assert.equal((await send(ports.out, 'alice@example.com', ['bob@example.net'], message('alice@example.com', 10))).mail.code, 451);
    const s = await scrape();
    assert.equal(total(s, 'dkim_proxy_relay_replies_total', { kind: 'out', class: 'unreachable' }), 1);
    const up = await cli(['health', '--url', `http://127.0.0.1:${ports.metrics}/healthz`]);
    assert.equal(up.code, 0);
    assert.equal(up.stdout, `ok  http://127.0.0.1:${ports.metrics}/healthz\n`);
  });

  it('counts reloads in the primary: a good one and a refused one', async () => {
    writeFileSync(dir.file, toml());
    daemon.child.kill('SIGHUP');
    await daemon.waitFor((l) => l['msg'] === 'reload passed on to the workers');
    writeFileSync(dir.file, toml('bogus = 1\n'));
    daemon.child.kill('SIGHUP');
    await daemon.waitFor((l) => l['msg'] === 'reload refused: the configuration in force is unchanged');
    const s = await scrape();
    assert.equal(total(s, 'dkim_proxy_config_reloads_total', { result: 'ok' }), 1);
    assert.equal(total(s, 'dkim_proxy_config_reloads_total', { result: 'refused' }), 1);
  });

  it('stats says why when nothing answers, and exits 75; health says down, exit 1', async () => {
    const closed = await freeTcpPort();
    const r = await cli(['stats', '--url', `http://127.0.0.1:${closed}/metrics`]);
    assert.equal(r.code, 75);
    assert.equal(r.stderr, `dkim-proxy: cannot read http://127.0.0.1:${closed}/metrics: ECONNREFUSED (is dkim-proxy running, with [metrics] listen set?)\n`);
    const down = await cli(['health', '--url', `http://127.0.0.1:${closed}/healthz`]);
    assert.equal(down.code, 1);
    assert.match(down.stdout, /^down  cannot read .*ECONNREFUSED/);
    const notMetrics = await cli(['stats', '--url', `http://127.0.0.1:${ports.metrics}/healthz`]);
    assert.equal(notMetrics.code, 65);
    assert.match(notMetrics.stderr, /^dkim-proxy: http:\/\/127\.0\.0\.1:\d+\/healthz is not a Prometheus metrics endpoint: not Prometheus text: ok\n$/);
    writeFileSync(`${dir.dir}/zero.toml`, toml());
    const zero = await cli(['stats', '--config', `${dir.dir}/zero.toml`], undefined, dir.dir);
    assert.equal(zero.code, 64);
    assert.match(zero.stderr, /port 0/);
  });
});
