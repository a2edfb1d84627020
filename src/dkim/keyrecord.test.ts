import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { formatKeyRecord, parseKeyRecord, splitTxt } from './keyrecord.js';
import { SAMPLE, results, sign, testKeys, verify, zone } from '../../test/helpers/engine.js';

describe('key records', () => {
  it('round-trips our own records for both key types', () => {
    for (const key of [testKeys.rsa.key, testKeys.ed25519.key]) {
      const r = parseKeyRecord(formatKeyRecord(key, { testing: true, strict: true }));
      assert.ok(r.ok);
      assert.equal(r.record.keyType, key.asymmetricKeyType);
      assert.equal(r.record.testing, true);
      assert.equal(r.record.strict, true);
    }
  });

  it('reads defaults: k=rsa, any hash, any service', () => {
    const p = formatKeyRecord(testKeys.rsa.key).split('p=')[1]!;
    const r = parseKeyRecord(`p=${p}`);
    assert.ok(r.ok);
    assert.equal(r.record.keyType, 'rsa');
    assert.equal(r.record.hashes, null);
    assert.deepEqual(r.record.services, ['*']);
    assert.equal(r.record.bits, 2048);
  });

  it('reads a record with a tag outside the strict grammar (x-future=1) when v, k and p are well formed, as Mail::DKIM, dkimpy and OpenDKIM do', () => {
    const p = formatKeyRecord(testKeys.rsa.key).split('p=')[1]!;
    const r = parseKeyRecord(`v=DKIM1; x-future=1; k=rsa; n=notes here; p=${p}`);
    assert.ok(r.ok, r.ok ? '' : r.message);
    assert.equal(r.record.bits, 2048);
    // The known tags stay strict: a bad p= or k= is still refused.
    assert.equal(parseKeyRecord('v=DKIM1; x-future=1; k=rsa; p=AAAA').ok, false);
    assert.equal(parseKeyRecord(`v=DKIM1; x-future=1; k=dsa; p=${p}`).ok, false);
    assert.equal(parseKeyRecord(`v=DKIM1; x-future=1; x-future=2; p=${p}`).ok, false);
  });

  it('refuses what RFC 6376 §3.6.1 forbids, naming the tag', () => {
    const p = formatKeyRecord(testKeys.rsa.key).split('p=')[1]!;
    const cases: [string, string, RegExp][] = [
      [`k=rsa; v=DKIM1; p=${p}`, 'v', /not the first tag/],
      [`v=DKIM2; p=${p}`, 'v', /unsupported version/],
      [`v=DKIM1; k=dsa; p=${p}`, 'k', /unsupported key type "dsa"/],
      ['v=DKIM1; k=rsa', 'p', /missing/],
      ['v=DKIM1; k=ed25519; p=AAAA', 'p', /not a valid ed25519 key/],
      ['v=DKIM1; k=rsa; p=AAAA', 'p', /not a valid rsa key/],
    ];
    for (const [txt, tag, message] of cases) {
      const r = parseKeyRecord(txt);
      assert.equal(r.ok, false, txt);
      if (!r.ok) {
        assert.equal(r.tag, tag);
        assert.match(r.message, message);
      }
    }
  });

  it('makes a key that does not fit the signature a permerror (h=, s=, k=)', async () => {
    const signed = sign(SAMPLE);
    const p = formatKeyRecord(testKeys.rsa.key).split('p=')[1]!;
    for (const record of [`v=DKIM1; h=sha1; p=${p}`, `v=DKIM1; s=other; p=${p}`, formatKeyRecord(testKeys.ed25519.key)]) {
      const records = new Map(zone);
      records.set('sel._domainkey.example.com', [record]);
      const r = await verify(signed, {}, records);
      assert.equal(r[0]?.result, 'permerror', record);
      assert.equal(r[0] && 'reason' in r[0] && r[0].reason, 'key does not fit the signature');
    }
    const records = new Map(zone);
    records.set('sel._domainkey.example.com', [`v=DKIM1; h=sha1:sha256; s=email; p=${p}`]);
    assert.deepEqual(results(await verify(signed, {}, records)), ['pass']);
  });

  it('reports an RSA key under 1024 bits as policy (RFC 8301), unless allowed', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 512 });
    const weak = { key: privateKey, keyType: 'rsa' as const, bits: 512, format: 'pkcs8' as const };
    const signed = sign(SAMPLE, { key: weak, selector: 'weak' });
    const records = new Map(zone);
    records.set('weak._domainkey.example.com', [formatKeyRecord(publicKey)]);
    assert.deepEqual(results(await verify(signed, {}, records)), ['policy']);
    assert.deepEqual(results(await verify(signed, { allowShortKeys: true }, records)), ['pass']);
  });

  it('splits long TXT values into 255-octet strings', () => {
    const parts = splitTxt('x'.repeat(600));
    assert.deepEqual(parts.map((s) => s.length), [255, 255, 90]);
    assert.deepEqual(splitTxt(''), ['']);
  });
});
