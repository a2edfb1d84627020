/**
 * One test (or more) per entry of shared/DKIM-PITFALLS.md, at the engine level.
 * Interop with the other implementations is in interop.test.ts; picking the
 * author domain (26) is in src/policy/author.test.ts; the transport entries
 * (15, 16, 29) are tested here for the engine and again for the proxies.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createPublicKey } from 'node:crypto';
import {
  formatAuthenticationResults,
  formatKeyRecord,
  MessageVerifier,
  hashBody,
  headerHashInput,
  normalizeLineEnds,
  parseCanonicalization,
  parseHeaderBlock,
  relaxedHeader,
  selectHeaders,
  signHeaderData,
  verifyMessage,
  type Canonicalization,
} from '../src/dkim/index.js';
import { isSameOrSubdomain } from '../src/dkim/signature.js';
import { parseTagList, stripTagValue } from '../src/dkim/tags.js';
import { fixturePath, readVector, zoneLookup } from './helpers/fixtures.js';
import { NOW, SAMPLE, results, sign, testKeys, verify, zone } from './helpers/engine.js';

/**
 * Builds a signature from a hand-written tag list (everything before `b=`),
 * filling `{bh}` with the real body hash, and signs it with the test RSA key.
 */
function craft(message: string, tagsBeforeB: string, h: string[], c: Canonicalization = { header: 'relaxed', body: 'relaxed' }, l?: number, afterB = ''): Buffer {
  const sep = message.indexOf('\r\n\r\n');
  const body = Buffer.from(message.slice(sep + 4), 'latin1');
  const bh = hashBody(body, c.body, 'sha256', l).hash.toString('base64');
  const field = `DKIM-Signature: ${tagsBeforeB.replace('{bh}', bh)}b=${afterB}\r\n`;
  const fields = parseHeaderBlock(message.slice(0, sep + 2));
  const data = headerHashInput(selectHeaders(fields, h), field, c.header);
  const b = signHeaderData('rsa', 'sha256', testKeys.rsa.key, data).toString('base64');
  return Buffer.from(field.replace(`b=${afterB}\r\n`, `b=${b}${afterB}\r\n`) + message, 'latin1');
}

const body = (m: Buffer | string): string => (typeof m === 'string' ? m : m.toString('latin1'));
const insertAfterSignature = (m: Buffer, header: string): Buffer => {
  const s = body(m);
  const at = s.indexOf('\r\nFrom:') + 2;
  return Buffer.from(s.slice(0, at) + `${header}\r\n` + s.slice(at), 'latin1');
};

describe('DKIM pitfalls', () => {
  it('1: empty bodies sign and verify under both canonicalizations', async () => {
    for (const c of ['simple', 'relaxed'] as const) {
      const signed = sign('From: a@example.com\r\nSubject: x\r\n\r\n', { canonicalization: { header: c, body: c } });
      assert.deepEqual(results(await verify(signed)), ['pass']);
      assert.match(body(signed), c === 'simple' ? /bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN\/XKdLCPjaYaY=/ : /bh=47DEQpj8HBSa\+\/TImW\+5JCeuQeRkm5NMpJWZG3hSuFU=/);
    }
  });

  it('2: whitespace-only trailing lines added after signing still verify under relaxed', async () => {
    const signed = sign(SAMPLE);
    assert.deepEqual(results(await verify(Buffer.concat([signed, Buffer.from(' \r\n\t\r\n\r\n')]))), ['pass']);
  });

  it('3: a header folded straight after the colon canonicalizes without the WSP', async () => {
    assert.equal(relaxedHeader('List-Unsubscribe:\r\n <https://example.com/u>\r\n'), 'list-unsubscribe:<https://example.com/u>\r\n');
    const msg = SAMPLE.replace('MIME-Version', 'List-Unsubscribe:\r\n <https://example.com/u>\r\nMIME-Version');
    const signed = sign(msg, { headers: ['From', 'List-Unsubscribe'] });
    const refolded = body(signed).replace('List-Unsubscribe:\r\n <', 'List-Unsubscribe: <');
    assert.deepEqual(results(await verify(refolded)), ['pass']);
  });

  it('4: a missing c= means simple/simple and c=relaxed means relaxed/simple', async () => {
    assert.deepEqual(parseCanonicalization(undefined), { header: 'simple', body: 'simple' });
    assert.deepEqual(parseCanonicalization('relaxed'), { header: 'relaxed', body: 'simple' });
    const noC = craft(SAMPLE, 'v=1; a=rsa-sha256; d=example.com; s=sel; h=from:subject; bh={bh}; ', ['from', 'subject'], { header: 'simple', body: 'simple' });
    assert.deepEqual(results(await verify(noC)), ['pass']);
    const relaxedOnly = craft(SAMPLE, 'v=1; a=rsa-sha256; c=relaxed; d=example.com; s=sel; h=from:subject; bh={bh}; ', ['from', 'subject'], { header: 'relaxed', body: 'simple' });
    assert.deepEqual(results(await verify(relaxedOnly)), ['pass']);
    // Trailing WSP is significant in a simple body, so relaxed/simple really is in force.
    assert.deepEqual(results(await verify(body(relaxedOnly).replace('noon?  ', 'noon?'))), ['fail']);
  });

  it('5: duplicate headers are taken bottom-up, and over-signing stops a prepended From', async () => {
    const overSigned = sign(SAMPLE);
    assert.match(body(overSigned), /h=from:from:/i);
    assert.deepEqual(results(await verify(insertAfterSignature(overSigned, 'From: Mallory <mallory@example.org>'))), ['fail']);
    // Without over-signing the attack works, which is why it is the default.
    const plain = sign(SAMPLE, { overSign: false });
    assert.deepEqual(results(await verify(insertAfterSignature(plain, 'From: Mallory <mallory@example.org>'))), ['pass']);
  });

  it('6: h= naming an absent header asserts its absence; "?" does not', async () => {
    const asserted = sign(SAMPLE, { headers: ['From', 'Reply-To'], overSign: false });
    assert.match(body(asserted), /h=From:Reply-To;/);
    assert.deepEqual(results(await verify(insertAfterSignature(asserted, 'Reply-To: x@example.org'))), ['fail']);
    const optional = sign(SAMPLE, { headers: ['From', 'Reply-To?'], overSign: false });
    assert.doesNotMatch(body(optional), /Reply-To/);
    assert.deepEqual(results(await verify(insertAfterSignature(optional, 'Reply-To: x@example.org'))), ['pass']);
  });

  it('7: h= names match case-insensitively, and differently-cased duplicates still count', async () => {
    const msg = SAMPLE.replace('Subject: Lunch', 'Subject: Lunch\r\nSUBJECT: Dinner');
    const signed = craft(msg, 'v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel; h=FROM:subject:Subject; bh={bh}; ', ['FROM', 'subject', 'Subject']);
    assert.deepEqual(results(await verify(signed)), ['pass']);
    assert.deepEqual(results(await verify(body(signed).replace('SUBJECT: Dinner', 'SUBJECT: Supper'))), ['fail']);
    assert.deepEqual(results(await verify(body(signed).replace('Subject: Lunch', 'Subject: Brunch'))), ['fail']);
  });

  it('8: FWS inside h= and around = and ; is tolerated', async () => {
    const signed = craft(SAMPLE, 'v = 1 ; a=rsa-sha256;\r\n\tc=relaxed/relaxed; d=example.com; s=sel; h=from :\r\n\tto: subject ; bh={bh}; ', ['from', 'to', 'subject']);
    assert.deepEqual(results(await verify(signed)), ['pass']);
  });

  it('9: only this signature\'s b= is emptied, even with "b=" inside z= and a trailing ";"', async () => {
    const tags = 'v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel; z=Date:Sun,=2022=20Feb=202026; h=from:subject; bh={bh}; ';
    // A trailing ";" after b= is legal.
    const signed = craft(SAMPLE, tags, ['from', 'subject'], undefined, undefined, ';');
    assert.match(body(signed), /b=[A-Za-z0-9+/=]+;\r\n/);
    assert.deepEqual(results(await verify(signed)), ['pass']);
    const parsed = parseTagList(' a=1; z=Feb=20x; b=abc\r\n def ;');
    assert.ok(parsed.ok);
    assert.equal(stripTagValue(' a=1; z=Feb=20x; b=abc\r\n def ;', parsed.tags.get('b')!), ' a=1; z=Feb=20x; b=;');
    // Two signatures on one message: each is checked with only its own b= removed.
    const twice = sign(signed, { algorithm: 'ed25519-sha256' });
    assert.deepEqual(results(await verify(twice)), ['pass', 'pass']);
  });

  it('10: the signature header is canonicalized with c= and no trailing CRLF (simple and relaxed)', async () => {
    for (const header of ['simple', 'relaxed'] as const) {
      const signed = sign(SAMPLE, { canonicalization: { header, body: 'simple' } });
      assert.deepEqual(results(await verify(signed)), ['pass'], header);
    }
  });

  it('11: our own folding keeps every line within 78 columns and verifies', async () => {
    const signed = sign(SAMPLE, { headers: ['From', 'To', 'Subject', 'Date', 'Message-ID', 'MIME-Version', 'Content-Type'], copyHeaders: true, expiresIn: 86400 });
    const field = body(signed).slice(0, body(signed).indexOf('\r\nFrom:'));
    for (const line of field.split('\r\n')) assert.ok(line.length <= 78, `line of ${line.length}: ${line}`);
    assert.match(field, /\r\n\t/);
    assert.deepEqual(results(await verify(signed)), ['pass']);
  });

  it('12: l= is counted after canonicalization, may cut a line, and must not exceed the body', async () => {
    const signed = sign(SAMPLE, { bodyLength: true });
    const ok = await verify(signed);
    assert.equal(ok[0]?.result, 'pass');
    const appended = await verify(Buffer.concat([signed, Buffer.from('P.S. appended by someone else\r\n')]));
    assert.equal(appended[0]?.result, 'pass');
    assert.ok(appended[0] && 'unsignedBodyBytes' in appended[0] && appended[0].unsignedBodyBytes! > 0, 'reports unsigned octets');
    // l= ending mid-line (no final CRLF in the signed part) is valid.
    const cut = craft(SAMPLE, 'v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel; l=10; h=from; bh={bh}; ', ['from'], undefined, 10);
    assert.deepEqual(results(await verify(cut)), ['pass']);
    const tooLong = craft(SAMPLE, 'v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel; l=100000; h=from; bh={bh}; ', ['from'], undefined, 100000);
    const r = await verify(tooLong);
    assert.equal(r[0]?.result, 'fail');
    assert.equal(r[0] && 'reason' in r[0] && r[0].reason, 'l= exceeds the body length');
  });

  it('13: bare LF input is normalized once, and the normalized bytes verify', async () => {
    const lf = SAMPLE.replace(/\r\n/g, '\n');
    const signed = sign(normalizeLineEnds(Buffer.from(lf)));
    assert.ok(!/[^\r]\n/.test(body(signed)));
    assert.deepEqual(results(await verify(signed)), ['pass']);
    // A hop that turns our CRLF into LF and back does not break it either.
    assert.deepEqual(results(await verify(normalizeLineEnds(Buffer.from(body(signed).replace(/\r\n/g, '\n'))))), ['pass']);
  });

  it('14: a bare CR inside the body signs and verifies', async () => {
    for (const c of ['simple', 'relaxed'] as const) {
      const signed = sign(SAMPLE + 'odd\rline \r end\r\n', { canonicalization: { header: c, body: c } });
      assert.deepEqual(results(await verify(signed)), ['pass'], c);
    }
  });

  it('15: lines starting with "." are signed as the unstuffed text (stuffing is the SMTP layer\'s)', async () => {
    const signed = sign(SAMPLE + '.\r\n..two dots\r\n.one dot\r\n');
    assert.deepEqual(results(await verify(signed)), ['pass']);
    assert.deepEqual(results(await verify(body(signed).replace('..two', '...two'))), ['fail']);
  });

  it('16: 8-bit bodies and headers are signed byte for byte', async () => {
    const utf8 = Buffer.from(SAMPLE.replace('Subject: Lunch', 'Subject: Déjeuner à midi') + 'Grüße, 東京\r\n', 'utf8');
    for (const c of ['simple', 'relaxed'] as const) {
      const signed = sign(utf8, { canonicalization: { header: c, body: c } });
      assert.ok(signed.includes(Buffer.from('東京', 'utf8')));
      assert.deepEqual(results(await verify(signed)), ['pass'], c);
    }
  });

  it('17: very long lines sign and verify', async () => {
    const long = 'x'.repeat(4000) + '   ' + 'y'.repeat(4000);
    const signed = sign(SAMPLE + long + '\r\n' + long + ' \r\n');
    assert.deepEqual(results(await verify(signed)), ['pass']);
  });

  it('18: every TXT record at the name is tried', async () => {
    const other = formatKeyRecord(testKeys.ed25519.key);
    const records = new Map(zone);
    records.set('sel._domainkey.example.com', ['v=spf1 -all', 'v=DKIM1; k=rsa; p=!!', other.replace('k=ed25519', 'k=rsa'), ...zone.get('sel._domainkey.example.com')!]);
    assert.deepEqual(results(await verify(sign(SAMPLE), {}, records)), ['pass']);
    records.set('sel._domainkey.example.com', ['v=DKIM1; k=rsa; p=!!', 'garbage']);
    const bad = await verify(sign(SAMPLE), {}, records);
    assert.equal(bad[0]?.result, 'permerror');
    assert.equal(bad[0] && 'reason' in bad[0] && bad[0].reason, 'key syntax');
  });

  it('19: p= as SubjectPublicKeyInfo and as bare RSAPublicKey both work', async () => {
    const pkcs1 = createPublicKey(testKeys.rsa.key).export({ format: 'der', type: 'pkcs1' }).toString('base64');
    const records = new Map(zone);
    records.set('sel._domainkey.example.com', [`v=DKIM1; k=rsa; p=${pkcs1}`]);
    assert.deepEqual(results(await verify(sign(SAMPLE), {}, records)), ['pass']);
  });

  it('20: ed25519 keys are published raw (32 octets) and sign SHA-256 of the headers', async () => {
    const record = formatKeyRecord(testKeys.ed25519.key);
    assert.equal(Buffer.from(record.split('p=')[1]!, 'base64').length, 32);
    assert.deepEqual(results(await verify(sign(SAMPLE, { algorithm: 'ed25519-sha256' }))), ['pass']);
  });

  it('21: the i=/d= domain check is label-aware', async () => {
    assert.equal(isSameOrSubdomain('fexample.com', 'example.com'), false);
    assert.equal(isSameOrSubdomain('news.example.com', 'example.com'), true);
    const bad = craft(SAMPLE, 'v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; i=@fexample.com; s=sel; h=from; bh={bh}; ', ['from']);
    assert.deepEqual(results(await verify(bad)), ['permerror']);
    const good = craft(SAMPLE, 'v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; i=alice@news.example.com; s=sel; h=from; bh={bh}; ', ['from']);
    assert.deepEqual(results(await verify(good)), ['pass']);
  });

  it('22: key flags t=s and t=y, and an empty p= (revoked)', async () => {
    const sub = craft(SAMPLE, 'v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; i=@news.example.com; s=sel; h=from; bh={bh}; ', ['from']);
    const strict = new Map(zone);
    strict.set('sel._domainkey.example.com', [formatKeyRecord(testKeys.rsa.key, { strict: true })]);
    assert.deepEqual(results(await verify(sub, {}, strict)), ['permerror']);
    assert.deepEqual(results(await verify(sign(SAMPLE), {}, strict)), ['pass']);
    const testing = new Map(zone);
    testing.set('sel._domainkey.example.com', [formatKeyRecord(testKeys.rsa.key, { testing: true })]);
    const t = await verify(sign(SAMPLE), {}, testing);
    assert.equal(t[0]?.result, 'pass');
    assert.equal(t[0] && 'testing' in t[0] && t[0].testing, true);
    const revoked = new Map(zone);
    revoked.set('sel._domainkey.example.com', ['v=DKIM1; k=rsa; p=']);
    const r = await verify(sign(SAMPLE), {}, revoked);
    assert.equal(r[0]?.result, 'permerror');
    assert.equal(r[0] && 'reason' in r[0] && r[0].reason, 'key revoked');
  });

  it('23: DNS timeouts are temperror, a missing record is permerror', async () => {
    const signed = sign(SAMPLE);
    const timeout = await verifyMessage(signed, async () => ({ kind: 'temperror', reason: 'dns timeout' }), NOW);
    assert.equal(timeout[0]?.result, 'temperror');
    const missing = await verifyMessage(signed, async () => ({ kind: 'nxdomain' }), NOW);
    assert.equal(missing[0]?.result, 'permerror');
    assert.equal(missing[0] && 'reason' in missing[0] && missing[0].reason, 'no key');
  });

  it('24: x= must follow t=, and an expired signature is a permanent error, with bounded drift', async () => {
    const signed = sign(SAMPLE, { expiresIn: 3600 });
    assert.deepEqual(results(await verify(signed, {}, zone, NOW + 3600 + 200)), ['pass'], 'within the allowed drift');
    assert.deepEqual(results(await verify(signed, {}, zone, NOW + 3600 + 400)), ['permerror']);
    const backwards = craft(SAMPLE, 'v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel; t=2000; x=1000; h=from; bh={bh}; ', ['from']);
    assert.deepEqual(results(await verify(backwards)), ['permerror']);
  });

  it('25: malformed tag lists give permerror, never an exception', async () => {
    const headers = [
      'v=1; a=; b=abcd; bh=abcd; d=example.com; h=from; s=sel',
      'a=rsa-sha256; b=abcd; bh=abcd; d=example.com; h=from; s=sel',
      'v=1; a=rsa-sha256; b=abcd; bh=abcd; d=example.com; h=from',
      'v=1; a',
      ';;;',
      'v=1; v=1; a=rsa-sha256; b=abcd; bh=abcd; d=example.com; h=from; s=sel',
      'v=1; a=rsa-sha256; b=ab\x01cd; bh=abcd; d=example.com; h=from; s=sel',
      'v=1; a=rsa-sha256; b=abcd; bh=abcd; d=example.com; h=subject; s=sel',
      'v=1; a=rsa-sha256; b=abcd; bh=abcd; d=example.com; h=from; s=sel; l=-5',
      '',
    ];
    for (const h of headers) {
      const r = await verify(`DKIM-Signature: ${h}\r\n${SAMPLE}`);
      assert.deepEqual(results(r), ['permerror'], h);
    }
  });

  it('27: a message already carrying signatures is re-signed without disturbing them', async () => {
    const vector = readVector(fixturePath('rfc', 'rfc8463.eml'));
    const records = new Map([...vector.records, ...zone]);
    const resigned = sign(vector.message);
    const r = await verifyMessage(resigned, zoneLookup(records), 1528637909 + 100);
    assert.deepEqual(results(r), ['pass', 'pass', 'pass']);
    assert.doesNotMatch(body(resigned).split('\r\n\r\n')[0]!.split('DKIM-Signature:')[1]!, /h=[^;]*dkim-signature/i);
  });

  it('28: at most N signatures are checked, and those past N get no result of their own', async () => {
    let m: Buffer = Buffer.from(SAMPLE, 'latin1');
    for (let k = 0; k < 12; k++) m = sign(m);
    const verifier = new MessageVerifier(m.toString('latin1', 0, m.indexOf('\r\n\r\n') + 2), { maxSignatures: 10 });
    assert.equal(verifier.keyQueries().length, 1);
    assert.equal(verifier.skipped, 2);
    const r = await verify(m, { maxSignatures: 10 });
    assert.deepEqual(results(r), Array(10).fill('pass'));
    assert.match(formatAuthenticationResults('mx.test', r, 2), /^Authentication-Results: mx\.test \(2 more DKIM signatures not checked\);/);

    // One valid author signature below 199 bogus ones (other domains, keys nobody
    // publishes) is still found: aligned signatures are checked first.
    let flood: Buffer = sign(Buffer.from(SAMPLE, 'latin1'));
    for (let k = 0; k < 199; k++) flood = sign(flood, { domain: `spam${k}.example.org`, selector: 'x' });
    const asked: string[] = [];
    const lookup = zoneLookup(zone);
    const flooded = await verifyMessage(flood, (name) => (asked.push(name), lookup(name)), NOW, { maxSignatures: 10, authorDomain: 'example.com' });
    assert.equal(flooded.length, 10, 'ten checked');
    assert.equal(asked.length, 10, 'ten lookups, not 200');
    assert.equal(flooded.filter((o) => o.result === 'pass' && o.sig.d === 'example.com').length, 1);
    assert.equal(flooded.filter((o) => o.result === 'permerror').length, 9);
    // And a signature listing an absurd number of header names is refused, not processed.
    const huge = craft(SAMPLE, `v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel; h=from${':x'.repeat(300)}; bh={bh}; `, ['from', ...Array<string>(300).fill('x')]);
    const refused = await verify(huge);
    assert.deepEqual(results(refused), ['permerror']);
    assert.match(refused[0] && 'detail' in refused[0] ? String(refused[0].detail) : '', /h=: lists 301 header names \(at most 256/);
  });

  it('a selector or domain that can never be a DNS name is permerror, and no lookup is made', async () => {
    const asked: string[] = [];
    const lookup = (name: string) => (asked.push(name), zoneLookup(zone)(name));
    for (const [s, d] of [[`${'s'.repeat(64)}`, 'example.com'], ['sel', `${'d'.repeat(63)}.${'e'.repeat(63)}.${'f'.repeat(63)}.${'g'.repeat(50)}.com`]] as const) {
      const m = craft(SAMPLE, `v=1; a=rsa-sha256; c=relaxed/relaxed; d=${d}; s=${s}; h=from; bh={bh}; `, ['from']);
      const r = await verifyMessage(m, lookup, NOW);
      assert.deepEqual(results(r), ['permerror']);
      assert.match(r[0] && 'detail' in r[0] ? String(r[0].detail) : '', /cannot exist in DNS/);
    }
    assert.deepEqual(asked, []);
  });

  it('29: signing only prepends fields; the message bytes are untouched', () => {
    const original = Buffer.from(SAMPLE.replace('To: Bob', 'To:   Bob,\r\n    Carol <c@example.net>'), 'latin1');
    const signed = sign(original);
    assert.ok(signed.subarray(signed.length - original.length).equals(original));
  });
});
