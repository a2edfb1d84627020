/**
 * `dkim-proxy explain`, run as the real command against keys from dnsmasq:
 * one case per cause word, and the two breakages postmasters meet most
 * (a footer, a rewritten header) on messages signed by us and by Mail::DKIM,
 * dkimpy and OpenDKIM.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatKeyRecord, parsePrivateKey, signMessage, type SignRequest, type SigningKey } from '../src/dkim/index.js';
import { cli } from './helpers/cli.js';
import { startDnsmasq, startSilentDns, type TestDns } from './helpers/dns-server.js';
import { asHeaderField, dkimpySign, mailDkimSign, openDkimSign } from './helpers/peers.js';
import { testKey } from './helpers/test-keys.js';

const D = 'example.com';
const MESSAGE = 'From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: Lunch\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <explain@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSee you at noon.\r\n';

interface Row {
  cause: string;
  result: string;
  d: string | null;
  detail: { check: string; expectedBodyHash: string | null; computedBodyHash: string | null; bodyLength: { signed: number; total: number } | null; changedCopies: { name: string }[]; signedHeaders: string[] };
}

describe('dkim-proxy explain', () => {
  let dir: string;
  let dns: TestDns;
  let silent: TestDns;
  const keys: Record<string, { key: SigningKey; file: string }> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-explain-'));
    const records = new Map<string, string[]>();
    for (const s of ['sel', 'other', 'nope', 'revoked', 'badrec']) {
      const { pem } = testKey('rsa-2048');
      const parsed = parsePrivateKey(pem);
      assert.ok(parsed.ok);
      const file = join(dir, `${s}.test-key.pem`);
      writeFileSync(file, pem, { mode: 0o600 });
      keys[s] = { key: parsed.key, file };
    }
    records.set(`sel._domainkey.${D}`, [formatKeyRecord(keys['sel']!.key.key)]);
    records.set(`other._domainkey.${D}`, [formatKeyRecord(testKey('rsa-2048').key)]);
    records.set(`revoked._domainkey.${D}`, ['v=DKIM1; k=rsa; p=']);
    records.set(`badrec._domainkey.${D}`, ['v=DKIM1; k=rsa; p=@@@not-base64@@@']);
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 512 });
    keys['weak'] = { key: { key: privateKey, keyType: 'rsa', bits: 512, format: 'pkcs8' }, file: '' };
    records.set(`weak._domainkey.${D}`, [formatKeyRecord(privateKey)]);
    dns = await startDnsmasq(records, [D]);
    silent = await startSilentDns();
  });
  after(async () => {
    await dns?.stop();
    await silent?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const now = Math.floor(Date.now() / 1000);
  const sign = (text: string, over: Partial<SignRequest> = {}, at = now): Buffer => {
    const selector = over.selector ?? 'sel';
    const message = Buffer.from(text, 'latin1');
    const fields = signMessage(message, [{ domain: D, selector, key: keys[selector]!.key, algorithm: 'rsa-sha256', canonicalization: { header: 'relaxed', body: 'relaxed' }, ...over }], at);
    return Buffer.concat([Buffer.from(fields.join(''), 'latin1'), message]);
  };
  const explain = async (message: Buffer | string, server = dns.server): Promise<{ code: number; rows: Row[]; text: string }> => {
    const json = await cli(['explain', '--dns-server', server, '--timeout', '500', '--json'], message);
    const text = await cli(['explain', '--dns-server', server, '--timeout', '500'], message);
    return { code: json.code, rows: JSON.parse(json.stdout) as Row[], text: text.stdout };
  };
  const footer = (m: Buffer): string => `${m.toString('latin1')}--\r\nA list footer\r\n`;
  const subject = (m: Buffer): string => m.toString('latin1').replace('Subject: Lunch', 'Subject: Dinner');

  it('one cause word per failure, the body judged first, and exit 0 only when every signature is ok', async () => {
    const ok = await explain(sign(MESSAGE));
    assert.equal(ok.code, 0);
    assert.deepEqual(ok.rows.map((r) => r.cause), ['ok']);

    const body = await explain(footer(sign(MESSAGE)));
    assert.equal(body.code, 1);
    assert.equal(body.rows[0]!.cause, 'body-changed');
    assert.notEqual(body.rows[0]!.detail.expectedBodyHash, body.rows[0]!.detail.computedBodyHash);
    assert.match(body.text, /^body-changed +signature 1: d=example\.com s=sel/m);
    assert.match(body.text, /fix: Something after the signer changed the body/);
    // Re-encoded (quoted-printable) with Content-Transfer-Encoding signed too: still the body first.
    const reencoded = sign(MESSAGE).toString('latin1').replace('Content-Transfer-Encoding: 8bit', 'Content-Transfer-Encoding: quoted-printable').replace('See you at noon.', 'See you at =\r\nnoon.');
    assert.equal((await explain(reencoded)).rows[0]!.cause, 'body-changed');

    const header = await explain(subject(sign(MESSAGE)));
    assert.equal(header.rows[0]!.cause, 'header-changed');
    assert.ok(header.rows[0]!.detail.signedHeaders.includes('subject:Dinner'), header.rows[0]!.detail.signedHeaders.join('|'));

    const cases: [string, Buffer | string, string?][] = [
      ['key-mismatch', sign(MESSAGE, { selector: 'other' })],
      ['key-missing', sign(MESSAGE, { selector: 'nope' })],
      ['key-revoked', sign(MESSAGE, { selector: 'revoked' })],
      ['key-syntax', sign(MESSAGE, { selector: 'badrec' })],
      ['weak-key', sign(MESSAGE, { selector: 'weak' })],
      ['sha1', sign(MESSAGE, { algorithm: 'rsa-sha1', allowSha1: true })],
      ['expired', sign(MESSAGE, { expiresIn: 3600 }, now - 86_400)],
      ['future', sign(MESSAGE, {}, now + 86_400)],
      ['syntax', `DKIM-Signature: v=1; a=rsa-sha256; d=${D}; s=sel; h=from; bh=; b=\r\n${MESSAGE}`],
      ['unsupported', sign(MESSAGE).toString('latin1').replace('a=rsa-sha256', 'a=rsa-sha512')],
      ['dns-temporary', sign(MESSAGE), silent.server],
    ];
    for (const [cause, message, server] of cases) {
      const r = await explain(message, server);
      assert.equal(r.code, 1, cause);
      assert.deepEqual(r.rows.map((x) => x.cause), [cause], cause);
    }
  });

  it('z= copies name the field that changed; l= says how much of the body it covers', async () => {
    const copied = await explain(subject(sign(MESSAGE, { copyHeaders: true })));
    assert.equal(copied.rows[0]!.cause, 'header-changed');
    assert.deepEqual(copied.rows[0]!.detail.changedCopies.map((c) => c.name), ['Subject']);
    assert.match(copied.text, /changed Subject:\n +signed: subject:Lunch\n +now: +subject:Dinner/);
    const covered = await explain(footer(sign(MESSAGE, { bodyLength: true })));
    assert.equal(covered.rows[0]!.cause, 'ok');
    assert.equal(covered.code, 0);
    const l = covered.rows[0]!.detail.bodyLength!;
    assert.ok(l.total > l.signed, JSON.stringify(l));
  });

  it('a footer and a header rewrite on messages signed by Mail::DKIM, dkimpy and OpenDKIM: body-changed and header-changed', async () => {
    const file = join(dir, 'plain.eml');
    writeFileSync(file, MESSAGE);
    const sel = keys['sel']!.file;
    const signed = [
      await mailDkimSign(file, sel, D, 'sel', 'relaxed'),
      await dkimpySign(file, sel, D, 'sel', 'relaxed/relaxed', 'rsa-sha256'),
      await openDkimSign(file, dir, sel, D, 'sel', 'relaxed/relaxed'),
    ].map((field) => Buffer.concat([Buffer.from(asHeaderField(field), 'latin1'), Buffer.from(MESSAGE, 'latin1')]));
    for (const [k, m] of signed.entries()) {
      assert.equal((await explain(m)).rows[0]!.cause, 'ok', `peer ${k}`);
      assert.equal((await explain(footer(m))).rows[0]!.cause, 'body-changed', `peer ${k}`);
      assert.equal((await explain(subject(m))).rows[0]!.cause, 'header-changed', `peer ${k}`);
    }
  });
});
