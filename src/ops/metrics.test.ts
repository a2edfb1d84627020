import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoundedLabel, createProxyMetrics, Registry } from './metrics.js';
import { parseExposition, total } from './scrape.js';

describe('metrics', () => {
  it('dkim_key_age_seconds: each configured key\'s age, the series of a reload replacing the old ones, unknown ages left out', async () => {
    const registry = new Registry();
    const m = createProxyMetrics(registry);
    m.signingKeys([
      { domain: 'example.org', selector: 'old', createdAt: Date.now() - 200 * 86_400_000 },
      { domain: 'example.org', selector: 'vault', createdAt: undefined },
    ]);
    let samples = parseExposition(await registry.metrics());
    const age = total(samples, 'dkim_key_age_seconds', { domain: 'example.org', selector: 'old' });
    assert.ok(age >= 200 * 86_400 && age < 200 * 86_400 + 60, String(age));
    assert.equal(samples.filter((x) => x.name === 'dkim_key_age_seconds' && x.labels['selector'] === 'vault').length, 0);
    m.signingKeys([{ domain: 'example.org', selector: 'new', createdAt: Date.now() }]);
    samples = parseExposition(await registry.metrics());
    assert.deepEqual(samples.filter((x) => x.name === 'dkim_key_age_seconds').map((x) => x.labels['selector']), ['new']);
  });

  it('caps label values taken from mail, so made-up domains cannot mint series without end', () => {
    const label = new BoundedLabel(3);
    assert.deepEqual(['A.example', 'b.example', 'c.example', 'd.example', 'a.example', null].map((d) => label.value(d)), ['a.example', 'b.example', 'c.example', '_other', 'a.example', 'none']);
  });

  it('reads back what it records through the exposition text (escaped labels too)', async () => {
    const registry = new Registry();
    const m = createProxyMetrics(registry);
    m.signing('example.com', 'signed', [{ domain: 'example.com', selector: 's1', algorithm: 'rsa-sha256' }, { domain: 'example.com', selector: 'e1', algorithm: 'ed25519-sha256' }]);
    m.signing('we"ird\\domain', 'unsigned', []);
    m.relay('out', 250);
    m.relay('out', 451);
    m.relay('out', 'unreachable');
    m.transaction('out', 250, 2048, 0.012);
    m.inFlight('in', 1);
    m.verified([
      { result: 'fail', reason: 'body hash did not verify', sig: { d: 'example.com' }, testing: false },
      { result: 'permerror', reason: 'no key', sig: { d: 'example.com' } },
      { result: 'pass', sig: { d: 'example.com' }, testing: false },
    ]);
    m.selfCheckFailed('example.com');
    const samples = parseExposition(await registry.metrics());
    assert.equal(total(samples, 'dkim_proxy_dkim_failures_total', { cause: 'body-changed' }), 1);
    assert.equal(total(samples, 'dkim_proxy_dkim_failures_total', { cause: 'key-missing' }), 1);
    assert.equal(total(samples, 'dkim_proxy_dkim_failures_total'), 2, 'a pass is no failure');
    assert.equal(total(samples, 'dkim_proxy_self_check_failures_total', { domain: 'example.com' }), 1);
    assert.equal(total(samples, 'dkim_proxy_signatures_total', { domain: 'example.com' }), 2);
    assert.equal(total(samples, 'dkim_proxy_signing_total', { domain: 'we"ird\\domain', result: 'unsigned' }), 1);
    assert.equal(total(samples, 'dkim_proxy_relay_replies_total', { class: '2xx' }), 1);
    assert.equal(total(samples, 'dkim_proxy_relay_replies_total', { class: '4xx' }), 1);
    assert.equal(total(samples, 'dkim_proxy_relay_replies_total', { class: 'unreachable' }), 1);
    assert.equal(total(samples, 'dkim_proxy_message_bytes_sum', { kind: 'out' }), 2048);
    assert.equal(total(samples, 'dkim_proxy_message_bytes_bucket', { kind: 'out', le: '4096' }), 1);
    assert.equal(total(samples, 'dkim_proxy_message_bytes_bucket', { kind: 'out', le: '1024' }), 0);
    assert.equal(total(samples, 'dkim_proxy_transactions_in_flight', { kind: 'in' }), 1);
  });

  it('refuses text that is not the exposition format', () => {
    assert.throws(() => parseExposition('<html>not found</html>\n'), /not Prometheus text/);
  });
});
