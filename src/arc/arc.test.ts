import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { formatKeyRecord, parsePrivateKey, signHeaderData, type KeyAnswer, type SigningKey } from '../dkim/index.js';
import { foldSignatureValue, foldTagList } from '../dkim/signature.js';
import { parseAuthenticationResults, parseArcAuthenticationResults } from '../authres/parse.js';
import { editHeader, listChanges, seal, withResults } from '../../test/helpers/arc.js';
import { planSeal, PreparedSealer } from './seal.js';
import { sealHashInput, verifyArc } from './verify.js';
import { parseHeaderBlock } from '../dkim/headers.js';
import { testKey } from '../../test/helpers/test-keys.js';

const NOW = 1_760_000_000;

function key(kind: 'rsa-2048' | 'rsa-1024' | 'ed25519' = 'rsa-2048'): SigningKey {
  const parsed = parsePrivateKey(testKey(kind).pem);
  assert.ok(parsed.ok);
  return parsed.key;
}

const listKey = key();
const fwdKey = key();
const edKey = key('ed25519');
const records = new Map<string, string[]>([
  ['arc._domainkey.lists.example.org', [formatKeyRecord(listKey.key)]],
  ['arc._domainkey.fwd.example.net', [formatKeyRecord(fwdKey.key)]],
  ['ed._domainkey.fwd.example.net', [formatKeyRecord(edKey.key)]],
]);
const lookup = async (name: string): Promise<KeyAnswer> => {
  const r = records.get(name);
  return r ? { kind: 'found', records: r } : { kind: 'nxdomain' };
};

const list = PreparedSealer.prepare({ domain: 'lists.example.org', selector: 'arc', key: listKey, authservId: 'mx.lists.example.org' });
const fwd = PreparedSealer.prepare({ domain: 'fwd.example.net', selector: 'arc', key: fwdKey, authservId: 'mx.fwd.example.net' });
const fwdEd = PreparedSealer.prepare({ domain: 'fwd.example.net', selector: 'ed', key: edKey, authservId: 'mx.fwd.example.net' });

const ORIGINAL: Buffer = Buffer.from(
  'From: Alice <alice@example.com>\r\nTo: list@lists.example.org\r\nSubject: Hello\r\nDate: Mon, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nHello, list.\r\n',
  'latin1',
);

/** A hop: writes its A-R with the arc= it found (validated by us), then seals. */
async function hop(message: Buffer, sealer: PreparedSealer, change?: (m: Buffer) => Buffer): Promise<Buffer> {
  const arc = await verifyArc(message, lookup, NOW);
  let m = withResults(message, sealer.authservId, `arc=${arc.result}; dkim=pass header.d=example.com`);
  if (change) m = change(m);
  return seal(m, sealer, NOW);
}

async function chain(hops: number): Promise<Buffer> {
  let m: Buffer = ORIGINAL;
  for (let k = 0; k < hops; k++) m = await hop(m, k % 2 === 0 ? fwd : list);
  return m;
}

const fieldsOf = (m: Buffer): ReturnType<typeof parseHeaderBlock> => parseHeaderBlock(m.toString('latin1', 0, m.indexOf('\r\n\r\n') + 2));

describe('ARC: sealing and validating our own chains', () => {
  it('one, two and three hops pass, with the instance and the newest sealer', async () => {
    for (const hops of [1, 2, 3]) {
      const m = await chain(hops);
      const r = await verifyArc(m, lookup, NOW);
      assert.equal(r.result, 'pass', `${hops}: ${r.reason}`);
      assert.equal(r.instance, hops);
      assert.equal(r.oldestPass, 1);
      assert.equal(r.sealer?.d, hops % 2 === 1 ? 'fwd.example.net' : 'lists.example.org');
    }
  });

  it('the new set is the first three fields, i= first after a space, the rest byte for byte', async () => {
    const before = withResults(ORIGINAL, 'mx.fwd.example.net', 'dkim=pass header.d=example.com');
    const m = seal(before, fwd, NOW);
    const fields = fieldsOf(m);
    assert.deepEqual(fields.slice(0, 3).map((f) => f.name), ['ARC-Seal', 'ARC-Message-Signature', 'ARC-Authentication-Results']);
    for (const f of fields.slice(0, 3)) assert.match(f.raw, /^[A-Za-z-]+: i=1;/);
    assert.ok(m.subarray(m.length - before.length).equals(before));
    assert.match(fields[0]!.raw, /cv=none;/);
    assert.match(fields[0]!.raw, new RegExp(`t=${NOW};`));
    assert.match(fields[1]!.raw, new RegExp(`t=${NOW};`));
  });

  it('Ed25519 seals pass too', async () => {
    const m = seal(withResults(ORIGINAL, 'mx.fwd.example.net', 'dkim=pass'), fwdEd, NOW);
    assert.equal((await verifyArc(m, lookup, NOW)).result, 'pass');
  });

  it('a list that changes the message keeps the chain, and oldest-pass says how far down the AMSes still verify', async () => {
    const one = await hop(ORIGINAL, fwd);
    const two = await hop(one, list, (m) => listChanges(m));
    const r = await verifyArc(two, lookup, NOW);
    assert.equal(r.result, 'pass', r.reason);
    assert.equal(r.oldestPass, 2);
    const three = await hop(two, fwd);
    const r3 = await verifyArc(three, lookup, NOW);
    assert.equal(r3.result, 'pass');
    assert.equal(r3.oldestPass, 2);
  });

  it('tampering after the newest AMS is caught: a signed header, the body, an older set', async () => {
    const m = await chain(2);
    const subject = await verifyArc(editHeader(m, /^Subject: Hello/m, 'Subject: Hellp'), lookup, NOW);
    assert.equal(subject.result, 'fail');
    assert.match(subject.reason, /^i=2: ARC-Message-Signature signature did not verify/);
    const body = await verifyArc(Buffer.concat([m, Buffer.from('more\r\n')]), lookup, NOW);
    assert.equal(body.result, 'fail');
    assert.match(body.reason, /^i=2: ARC-Message-Signature body hash did not verify/);
    const aar = await verifyArc(editHeader(m, /^(ARC-Authentication-Results: i=1; mx\.fwd\.example\.net;\r\n\tarc=)none/m, '$1pass'), lookup, NOW);
    assert.equal(aar.result, 'fail');
    assert.match(aar.reason, /ARC-Seal signature did not verify/);
  });

  it('a seal whose key is gone, or not in DNS at all, fails; a DNS timeout fails as temporary', async () => {
    const m = await chain(1);
    const gone = await verifyArc(m, async () => ({ kind: 'nxdomain' }), NOW);
    assert.equal(gone.result, 'fail');
    assert.match(gone.reason, /no key/);
    assert.equal(gone.temporary, false);
    const timeout = await verifyArc(m, async () => ({ kind: 'temperror', reason: 'dns timeout' }), NOW);
    assert.equal(timeout.result, 'fail');
    assert.equal(timeout.temporary, true);
  });

  it('RSA keys of 1024 bits pass; a 512-bit seal is refused (RFC 8301)', async () => {
    const k1024 = key('rsa-1024');
    const s = PreparedSealer.prepare({ domain: 'small.example', selector: 's', key: k1024, authservId: 'mx' });
    const m = seal(withResults(ORIGINAL, 'mx', 'dkim=none'), s, NOW);
    const ok = await verifyArc(m, async () => ({ kind: 'found', records: [formatKeyRecord(k1024.key)] }), NOW);
    assert.equal(ok.result, 'pass');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 512 });
    const weak: SigningKey = { key: privateKey, keyType: 'rsa', bits: 512, format: 'pkcs8' };
    const w = PreparedSealer.prepare({ domain: 'small.example', selector: 's', key: weak, authservId: 'mx' });
    const bad = await verifyArc(seal(withResults(ORIGINAL, 'mx', 'dkim=none'), w, NOW), async () => ({ kind: 'found', records: [formatKeyRecord(privateKey)] }), NOW);
    assert.equal(bad.result, 'fail');
    assert.match(bad.reason, /shorter than 1024 bits/);
  });
});

describe('ARC: broken chains fail before any key is asked for', () => {
  const asked: string[] = [];
  const counting = async (name: string): Promise<KeyAnswer> => {
    asked.push(name);
    return lookup(name);
  };
  const drop = (m: Buffer, re: RegExp): Buffer => {
    const fields = fieldsOf(m);
    const body = m.subarray(m.indexOf('\r\n\r\n') + 2);
    return Buffer.concat([Buffer.from(fields.filter((f) => !re.test(f.raw)).map((f) => f.raw).join(''), 'latin1'), body]);
  };
  const cases: [string, (m: Buffer) => Buffer, RegExp][] = [
    ['a gap', (m) => drop(m, /^ARC-[A-Za-z-]+: i=2;/), /i=2 is missing/],
    ['a duplicate', (m) => Buffer.concat([Buffer.from(fieldsOf(m)[1]!.raw, 'latin1'), m]), /i=3 has more than one ARC-Message-Signature/],
    ['i=51', (m) => editHeader(m, /^ARC-Seal: i=3;/m, 'ARC-Seal: i=51;'), /i=51: a chain has at most 50 sets/],
    ['a missing AMS', (m) => drop(m, /^ARC-Message-Signature: i=1;/), /i=1 has no ARC-Message-Signature/],
    ['an AAR without i=', (m) => editHeader(m, /^ARC-Authentication-Results: i=2; /m, 'ARC-Authentication-Results: '), /an ARC-Authentication-Results has no valid i=/],
    ['cv=fail in the middle', (m) => editHeader(m, /^(ARC-Seal: i=2; cv=)pass/m, '$1fail'), /i=2: ARC-Seal has cv=fail, expected cv=pass/],
    ['cv=pass at i=1', (m) => editHeader(m, /^(ARC-Seal: i=1; cv=)none/m, '$1pass'), /i=1: ARC-Seal has cv=pass, expected cv=none/],
    ['an AS with h=', (m) => editHeader(m, /^(ARC-Seal: i=2; cv=pass;)/m, '$1 h=from;'), /must not have h=/],
    ['an AMS that signs ARC-Seal', (m) => editHeader(m, /^(ARC-Message-Signature: i=3;[^]*?h=)/m, '$1ARC-Seal:'), /must not sign ARC-Seal/],
  ];
  for (const [name, damage, reason] of cases) {
    it(name, async () => {
      const m = damage(await chain(3));
      asked.length = 0;
      const r = await verifyArc(m, counting, NOW);
      assert.equal(r.result, 'fail');
      assert.match(r.reason, reason);
      assert.deepEqual(asked, []);
    });
  }

  it('the newest seal saying cv=fail ends the chain', async () => {
    const m = await chain(2);
    const failedSeal = seal(withResults(m, 'mx.fwd.example.net', 'arc=fail'), fwd, NOW);
    const r = await verifyArc(failedSeal, lookup, NOW);
    assert.equal(r.result, 'fail');
    assert.match(r.reason, /i=3: the newest ARC-Seal says cv=fail/);
  });

  it('an AS that signs the wrong sets (only its own, while claiming cv=pass) fails', async () => {
    const one = await chain(1);
    const m = withResults(one, 'mx.fwd.example.net', 'arc=pass');
    // A correct AAR and AMS for i=2, then a seal over set 2 alone.
    const good = seal(m, fwd, NOW);
    const fields = fieldsOf(good);
    const aar = fields[2]!.raw;
    const ams = fields[1]!.raw;
    const header = foldTagList('ARC-Seal', [['i=2;'], ['cv=pass;'], ['a=rsa-sha256;'], ['d=fwd.example.net;'], ['s=arc;'], [`t=${NOW};`]]);
    const b = signHeaderData('rsa', 'sha256', fwdKey.key, sealHashInput([], { aar, ams, seal: `${header}\r\n` })).toString('base64');
    const wrong = Buffer.concat([Buffer.from(`${header}${foldSignatureValue(header, b)}\r\n${ams}${aar}`, 'latin1'), m]);
    const r = await verifyArc(wrong, lookup, NOW);
    assert.equal(r.result, 'fail');
    assert.match(r.reason, /^i=2: ARC-Seal signature did not verify/);
  });

  it('a chain whose seals name more keys than twice the signature limit fails without a lookup', async () => {
    const m = await chain(3);
    asked.length = 0;
    const r = await verifyArc(m, counting, NOW, { maxSignatures: 1 });
    assert.equal(r.result, 'pass', 'two sealers, two keys: within 2 × 1');
    const three = seal(withResults(m, 'mx.fwd.example.net', 'arc=pass'), fwdEd, NOW);
    asked.length = 0;
    const over = await verifyArc(three, counting, NOW, { maxSignatures: 1 });
    assert.equal(over.result, 'fail');
    assert.match(over.reason, /the seals name 3 different keys; at most 2 are looked up/);
    assert.deepEqual(asked, []);
  });

  it('no ARC fields: none', async () => {
    const r = await verifyArc(ORIGINAL, lookup, NOW);
    assert.equal(r.result, 'none');
    assert.equal(r.instance, 0);
  });
});

describe('ARC: what the sealer takes from the Authentication-Results', () => {
  const plan = (text: string) => planSeal(parseHeaderBlock(text.replace(/\n/g, '\r\n')), 'mx.example.org');

  it('combines every field of our authserv-id, comments around the id included; others and broken ones left out', () => {
    const p = plan(
      'Authentication-Results: (first) mx.example.org (ours); spf=pass smtp.mailfrom=a@example.com\n' +
        'Authentication-Results: other.example; dkim=fail header.d=example.com\n' +
        'Authentication-Results: mx.example.org; dkim=pass (good) header.d=example.com;\n dmarc=pass header.from=example.com\n' +
        'Authentication-Results: mx.example.org; dkim=pass header.d=\n' +
        'From: a@example.com\n',
    );
    assert.ok(p.ok);
    assert.equal(p.cv, 'none');
    assert.equal(
      p.aar,
      'ARC-Authentication-Results: i=1; mx.example.org;\r\n\tspf=pass smtp.mailfrom=a@example.com;\r\n\tdkim=pass (good) header.d=example.com;\r\n\tdmarc=pass header.from=example.com\r\n',
    );
  });

  it('arc=fail seals cv=fail; a chain with no arc= result, 50 sets, or a newest cv=fail are refused', async () => {
    const m = await chain(1);
    const failing = planSeal(fieldsOf(withResults(m, 'mx.example.org', 'arc=fail')), 'mx.example.org');
    assert.ok(failing.ok);
    assert.equal(failing.cv, 'fail');
    assert.equal(failing.instance, 2);
    const silent = planSeal(fieldsOf(m), 'mx.example.org');
    assert.ok(!silent.ok);
    assert.match(silent.reason, /no arc= result/);
    const fifty = planSeal(fieldsOf(editHeader(m, /^ARC-Seal: i=1;/m, 'ARC-Seal: i=50;')), 'mx.example.org');
    assert.ok(!fifty.ok);
    assert.match(fifty.reason, /already has 50 ARC sets/);
    const sealedFail = seal(withResults(m, 'mx.fwd.example.net', 'arc=fail'), fwd, NOW);
    const after = planSeal(fieldsOf(withResults(sealedFail, 'mx.example.org', 'arc=fail')), 'mx.example.org');
    assert.ok(!after.ok);
    assert.match(after.reason, /already failed/);
  });

  it('the sealer is checked once: an AMS that would sign ARC-Seal or lacks From, and a key of the other type, are refused', () => {
    assert.throws(() => PreparedSealer.prepare({ domain: 'a.example', selector: 's', key: listKey, authservId: 'mx', headers: ['From', 'ARC-Seal'] }), /must not sign arc-seal/);
    assert.throws(() => PreparedSealer.prepare({ domain: 'a.example', selector: 's', key: listKey, authservId: 'mx', headers: ['Subject'] }), /must sign From/);
    assert.throws(() => PreparedSealer.prepare({ domain: 'a.example', selector: 's', key: listKey, authservId: 'mx', algorithm: 'ed25519-sha256' }), /needs an ed25519 key/);
    assert.throws(() => PreparedSealer.prepare({ domain: 'a.example', selector: 's', key: listKey, authservId: 'two words' }), /not a token/);
  });
});

describe('Authentication-Results parsing', () => {
  it('reads the id, the results, their properties and reasons, skipping comments', () => {
    const p = parseAuthenticationResults(' (c) mx.example.org 1 (v); dkim=pass (ok) header.d=example.com header.b="ab=c";\r\n spf=fail reason="not listed" smtp.mailfrom=a@b.example');
    assert.ok(p);
    assert.equal(p.authservId, 'mx.example.org');
    assert.deepEqual(p.results.map((r) => [r.method, r.result, r.reason, [...r.props]]), [
      ['dkim', 'pass', undefined, [['header.d', 'example.com'], ['header.b', 'ab=c']]],
      ['spf', 'fail', 'not listed', [['smtp.mailfrom', 'a@b.example']]],
    ]);
    assert.deepEqual(parseAuthenticationResults('mx; none')?.results, []);
    for (const broken of ['', 'mx; dkim', 'mx; dkim=pass header.d', 'mx; dkim=pass (unclosed', 'mx dkim=pass']) assert.equal(parseAuthenticationResults(broken), null, broken);
    assert.equal(parseArcAuthenticationResults(' i=3; mx; arc=pass')?.instance, 3);
    assert.equal(parseArcAuthenticationResults(' mx; arc=pass'), null);
  });
});
