import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixturePath, loadKey, readVector, zoneLookup } from '../../test/helpers/fixtures.js';
import { findBodyStart, parseHeaderBlock, selectHeaders } from './headers.js';
import { parseSignature } from './signature.js';
import { headerHashInput, signMessage } from './sign.js';
import { signHeaderData } from './crypto.js';
import { verifyMessage } from './verify.js';

const vector = readVector(fixturePath('rfc', 'rfc8463.eml'));
const T = 1528637909;
const keys = {
  'ed25519-sha256': loadKey(fixturePath('rfc', 'rfc8463-ed25519.test-key.pem')),
  'rsa-sha256': loadKey(fixturePath('rfc', 'rfc8463-rsa.test-key.pem')),
} as const;

describe('RFC 8463 Appendix A', () => {
  it('verifies both example signatures', async () => {
    const outcomes = await verifyMessage(vector.message, zoneLookup(vector.records), T);
    assert.deepEqual(
      outcomes.map((o) => [o.result, o.sig.a, o.sig.s]),
      [
        ['pass', 'ed25519-sha256', 'brisbane'],
        ['pass', 'rsa-sha256', 'test'],
      ],
    );
  });

  it('reproduces both b= values exactly from the RFC keys (both algorithms are deterministic)', () => {
    const { headerEnd } = findBodyStart(vector.message);
    const fields = parseHeaderBlock(vector.message.toString('latin1', 0, headerEnd));
    const sigs = fields.filter((f) => f.key === 'dkim-signature');
    assert.equal(sigs.length, 2);
    for (const field of sigs) {
      const parsed = parseSignature(field);
      assert.ok(parsed.ok);
      const sig = parsed.signature;
      const data = headerHashInput(selectHeaders(fields, sig.h), sig.strippedRaw, sig.canonicalization.header);
      const b = signHeaderData(sig.keyType, sig.hash, keys[sig.algorithm as keyof typeof keys].key, data);
      assert.equal(b.toString('base64'), sig.bText, `${sig.algorithm} b= differs`);
    }
  });

  it('signs the example message with the RFC keys so that it verifies, with the RFC body hash', async () => {
    const { bodyStart } = findBodyStart(vector.message);
    const unsigned = Buffer.concat([
      Buffer.from(vector.message.toString('latin1', 0, bodyStart).replace(/^DKIM-Signature:[^]*?\r\n(?=[^ \t])/gim, ''), 'latin1'),
      vector.message.subarray(bodyStart),
    ]);
    assert.ok(unsigned.toString().startsWith('From: Joe SixPack'));
    const h = ['from', 'to', 'subject', 'date', 'message-id', 'from', 'subject', 'date'];
    const fields = signMessage(
      unsigned,
      (['ed25519-sha256', 'rsa-sha256'] as const).map((algorithm) => ({
        domain: 'football.example.com',
        selector: algorithm === 'rsa-sha256' ? 'test' : 'brisbane',
        key: keys[algorithm],
        algorithm,
        canonicalization: { header: 'relaxed', body: 'relaxed' },
        headers: h,
        overSign: false,
        identity: '@football.example.com',
      })),
      T,
    );
    for (const folded of fields) {
      const f = folded.replace(/\r\n\t/g, '');
      assert.match(f, /bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;/);
      assert.match(f, /h=from:to:subject:date:message-id:from:subject:date;/);
      assert.match(f, /t=1528637909;/);
    }
    const signed = Buffer.concat([Buffer.from(fields.join(''), 'latin1'), unsigned]);
    const outcomes = await verifyMessage(signed, zoneLookup(vector.records), T);
    assert.deepEqual(outcomes.map((o) => o.result), ['pass', 'pass']);
  });
});
