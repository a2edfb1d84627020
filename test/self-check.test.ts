/**
 * `[signing] self_check`: a signature that does not verify against its own
 * key is never sent. The failure is made the way it happens in the field: the
 * key the signer holds is not the one the config now names (a key swapped on
 * disk between load and signing).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.js';
import type { ProxyConfig, SigningConfig } from '../src/config/types.js';
import { parsePrivateKey } from '../src/dkim/index.js';
import { processMessage } from '../src/pipeline/offline.js';
import { SigningProcessor } from '../src/pipeline/sign.js';
import { PolicyReply } from '../src/smtp/replies.js';
import { makeConfigDir, type ConfigDir } from './helpers/config-dir.js';
import { zoneLookup } from './helpers/fixtures.js';
import { testKey } from './helpers/test-keys.js';

const MESSAGE = Buffer.from('From: a@example.com\r\nTo: b@example.net\r\nSubject: self-check\r\n\r\nbody\r\n', 'latin1');

describe('[signing] self_check', () => {
  let dir: ConfigDir;
  let config: ProxyConfig;
  before(async () => {
    dir = makeConfigDir('[domain."example.com"]\nselector = "s1"\n', [{ domain: 'example.com', selector: 's1' }]);
    const r = await loadConfig(dir.file, { cwd: dir.dir, env: {} });
    assert.ok(r.ok);
    config = r.config;
  });
  after(() => rmSync(dir.dir, { recursive: true, force: true }));

  /** The config, with the block's key swapped for another after the signer was prepared. */
  const swapped = (selfCheck: boolean): SigningConfig => {
    const block = config.signing.domains.get('example.com')!;
    const other = parsePrivateKey(testKey('rsa-2048').pem);
    assert.ok(other.ok);
    const signer = { ...block.signer, key: other.key };
    return { ...config.signing, selfCheck, domains: new Map([['example.com', { ...block, signer, candidates: [signer] }]]) };
  };
  const run = (signing: SigningConfig, told: unknown[] = []) =>
    processMessage(new SigningProcessor({ signing: () => signing, lookup: zoneLookup(dir.records), now: () => 1_790_000_000, selfCheckFailed: (f) => told.push(f) }), MESSAGE);

  it('is on by default, and a good signature passes it', async () => {
    assert.equal(config.signing.selfCheck, true);
    const r = await run(config.signing);
    assert.equal(r.report.kind, 'signed');
  });

  it('a signature that does not verify against its key is never sent: 451 4.7.5, and the log is told which and why', async () => {
    const told: { domain: string; selector: string; reason: string }[] = [];
    await assert.rejects(run(swapped(true), told), (err: unknown) => err instanceof PolicyReply && err.responseCode === 451 && err.enhanced === '4.7.5' && /d=example\.com s=s1 failed its self-check/.test(err.text));
    assert.equal(told.length, 1);
    assert.equal(told[0]!.selector, 's1');
    assert.match(told[0]!.reason, /signature did not verify, checked against /);
    // Without the check the same mistake goes out signed.
    const unchecked = await run(swapped(false));
    assert.equal(unchecked.report.kind, 'signed');
  });

  it('self_check = false is read from [signing]', async () => {
    const d = makeConfigDir('[signing]\nself_check = false\n[domain."example.com"]\nselector = "s1"\n', [{ domain: 'example.com', selector: 's1' }]);
    const r = await loadConfig(d.file, { cwd: d.dir, env: {} });
    rmSync(d.dir, { recursive: true, force: true });
    assert.ok(r.ok && r.config.signing.selfCheck === false);
  });
});
