import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LiveConfig } from './live.js';
import { makeConfigDir } from '../../test/helpers/config-dir.js';
import { testKey } from '../../test/helpers/test-keys.js';

describe('config reload', () => {
  it('keeps the old config, whole, when the new one is bad; takes a good one with its new keys', async () => {
    const d = makeConfigDir('[domain."example.com"]\nselector = "s1"\n', [{ domain: 'example.com', selector: 's1' }]);
    try {
      const opened = await LiveConfig.open(d.file, { cwd: d.dir, env: {} });
      assert.ok(opened.ok);
      const live = opened.live;
      const before = live.config;
      const seen: string[] = [];
      live.onChange((c) => seen.push([...c.signing.domains.keys()].join()));

      writeFileSync(d.file, '[domain."example.com"]\nselector = "s2"\n'); // no such key yet
      const bad = await live.reload();
      assert.equal(bad.ok, false);
      assert.ok(!bad.ok && bad.issues.some((i) => /s2\.key: ENOENT/.test(i.message)));
      assert.equal(live.config, before, 'the old config stays in force');
      assert.deepEqual(seen, []);

      const pem = testKey('rsa-2048').pem;
      writeFileSync(join(d.dir, 'keys', 'example.com', 's2.key'), pem, { mode: 0o600 });
      writeFileSync(d.file, '[domain."example.com"]\nselector = "s2"\n[domain."example.org"]\nselector = "s2"\nkey_file = "keys/example.com/s2.key"\n');
      const good = await live.reload();
      assert.ok(good.ok);
      assert.notEqual(live.config, before);
      assert.equal(live.config.signing.domains.get('example.com')!.signer.selector, 's2');
      assert.deepEqual(seen, ['example.com,example.org']);
      // The key was re-read from disk, not taken from the old config.
      assert.equal(live.config.signing.domains.get('example.com')!.signer.key.key.export({ format: 'pem', type: 'pkcs1' }), pem);
      assert.ok(readFileSync(d.file, 'utf8').includes('s2'));
    } finally {
      rmSync(d.dir, { recursive: true, force: true });
    }
  });
});
