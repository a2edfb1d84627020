/**
 * [out] transport_encoding = "7bit" on the corpus (test/helpers/corpus.ts):
 * what needs converting is converted, the result is 7-bit clean with short
 * lines, its header fields are the sender's bar the Content-Transfer-Encoding
 * fields, mailparser reads the same message out of it, and what needs no
 * converting is left byte for byte. Signed after the conversion, it verifies
 * with Mail::DKIM, dkimpy and OpenDKIM. Through the `out` listener: the
 * conversion logged and signed over, "preserve" leaving the bytes alone, and
 * a 50 MB message with a 40 MB binary attachment converted while streaming,
 * the proxy's peak memory well under the message's size.
 */
import assert from 'node:assert/strict';
import { isAscii } from 'node:buffer';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Splitter, type SplitterChunk } from '@zone-eu/mailsplit';
import { simpleParser } from 'mailparser';
import { findBodyStart, formatKeyRecord, parseHeaderBlock, parsePrivateKey } from '../src/dkim/index.js';
import { isEightBitLabel } from '../src/mime/scan.js';
import { toSevenBit } from '../src/mime/seven-bit.js';
import { reencodeMessage } from '../src/pipeline/transport.js';
import { createHash } from 'node:crypto';
import { corpus, largeEightBitMessage, type CorpusMessage } from './helpers/corpus.js';
import { cli } from './helpers/cli.js';
import { makeConfigDir } from './helpers/config-dir.js';
import { statusKb } from './helpers/proc.js';
import { startDaemon } from './helpers/daemon.js';
import { send, startProxy } from './helpers/proxy.js';
import { startSink, type Sink } from './helpers/sink.js';
import { NextHop } from '../src/relay/client.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { sign, testKeys, verify, results } from './helpers/engine.js';
import * as peers from './helpers/peers.js';

/** What a reader sees: mailparser's text, HTML, attachments and header fields (bar the ones the conversion may set). */
async function meaning(message: Buffer): Promise<unknown> {
  const parsed = await simpleParser(message, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
  return {
    text: parsed.text,
    html: parsed.html,
    headers: [...parsed.headers.entries()].filter(([key]) => key !== 'content-transfer-encoding' && key !== 'mime-version' && key !== 'dkim-signature').map(([key, value]) => [key, JSON.stringify(value)]),
    attachments: parsed.attachments.map((a) => ({ type: a.contentType, filename: a.filename, disposition: a.contentDisposition, content: a.content.toString('base64') })),
  };
}

/** The header fields of the message itself, without the Content-Transfer-Encoding and MIME-Version the conversion may set. */
function ownFields(message: Buffer): string[] {
  const { headerEnd } = findBodyStart(message);
  return parseHeaderBlock(message.subarray(0, headerEnd).toString('latin1'))
    .filter((f) => f.key !== 'content-transfer-encoding' && f.key !== 'mime-version')
    .map((f) => f.raw);
}

/** Why the body is not fit for a 7-bit hop; undefined when it is. */
function unfit(message: Buffer): string | undefined {
  const body = message.subarray(findBodyStart(message).bodyStart);
  if (!isAscii(body)) return '8-bit octets';
  if (body.includes(0)) return 'NUL';
  const lines = body.toString('latin1').split('\r\n');
  if (lines.some((l) => l.includes('\r') || l.includes('\n'))) return 'bare CR';
  const long = lines.findIndex((l) => l.length > 998);
  if (long !== -1) return `line ${long + 1} has ${lines[long]!.length} octets`;
  return undefined;
}

async function labels(message: Buffer): Promise<string[]> {
  const splitter = new Splitter();
  Readable.from([message]).pipe(splitter);
  const out: string[] = [];
  for await (const chunk of splitter as AsyncIterable<SplitterChunk>) if (chunk.type === 'node' && typeof chunk.encoding === 'string' && chunk.encoding) out.push(chunk.encoding);
  return out;
}

let messages: CorpusMessage[];
const converted = new Map<string, Buffer>();

before(async () => {
  messages = await corpus();
  for (const m of messages) {
    const r = await reencodeMessage(m.message);
    if (r) converted.set(m.name, r.message);
  }
});

describe('transport_encoding = "7bit" on the corpus', () => {
  it('converts what a 7-bit hop would change, and leaves the rest byte for byte', async (t) => {
    let unchanged = 0;
    for (const m of messages) {
      const out = converted.get(m.name);
      if (out === undefined) {
        unchanged++;
        // Nothing to do: no 8-bit octets, long lines or 8bit labels anywhere; the converter, forced, agrees.
        assert.equal(unfit(m.message), undefined, m.name);
        assert.ok(!(await labels(m.message)).some(isEightBitLabel), m.name);
        const forced: Buffer[] = [];
        await toSevenBit(() => [m.message], { head: (b) => void forced.push(b, Buffer.from('\r\n')), body: (c) => void forced.push(c) });
        assert.ok(Buffer.concat(forced).equals(m.message), `${m.name}: a message that needs nothing is not changed`);
        continue;
      }
      assert.equal(unfit(out), undefined, `${m.name}: not 7-bit clean after the conversion`);
      assert.deepEqual((await labels(out)).filter(isEightBitLabel), [], `${m.name}: a part is still declared 8bit or binary`);
      assert.deepEqual(ownFields(out), ownFields(m.message), `${m.name}: header fields changed beyond Content-Transfer-Encoding`);
    }
    t.diagnostic(`corpus: ${messages.length} messages, ${messages.length - unchanged} converted, ${unchanged} unchanged`);
    assert.ok(messages.length - unchanged >= 100, 'the corpus exercises the conversion');
    assert.ok(unchanged >= 8, 'the corpus has 7-bit clean messages too');
  });

  it('mailparser reads the same message before and after, for every message in the corpus', async () => {
    for (const m of messages) {
      const out = converted.get(m.name);
      if (out === undefined) continue;
      assert.deepEqual(await meaning(out), await meaning(m.message), m.name);
    }
  });

  it('is idempotent: a converted message needs no second conversion', async () => {
    for (const [name, out] of converted) assert.equal(await reencodeMessage(out), undefined, name);
  });
});

describe('converted, then signed: the other implementations verify it', () => {
  let dns: TestDns;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-7bit-'));
    dns = await startDnsmasq(new Map([['sel._domainkey.example.com', [formatKeyRecord(testKeys.rsa.key)]]]), ['example.com']);
  });
  after(async () => {
    await dns?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('Mail::DKIM, dkimpy and OpenDKIM pass every converted message we signed', async () => {
    const files: string[] = [];
    for (const [k, out] of [...converted.values()].entries()) {
      const signed = sign(out, { canonicalization: { header: 'relaxed', body: k % 2 === 0 ? 'relaxed' : 'simple' } });
      assert.deepEqual(results(await verify(signed)), ['pass']);
      const file = join(dir, `converted-${k}.eml`);
      writeFileSync(file, signed);
      files.push(file);
    }
    for (const [name, verifier] of [['Mail::DKIM', peers.mailDkimVerify], ['dkimpy', peers.dkimpyVerify]] as const) {
      const got = await verifier(files, dns.port);
      assert.equal(got.length, files.length, name);
      assert.deepEqual(got.filter((r) => r.result !== 'pass'), [], name);
    }
    // OpenDKIM runs once per message: a sample of every tenth.
    const keysFile = join(dir, 'test-public-keys.txt');
    writeFileSync(keysFile, `sel._domainkey.example.com ${formatKeyRecord(testKeys.rsa.key)}\n`);
    for (const file of files.filter((_, k) => k % 10 === 0)) {
      const got = await peers.openDkimVerify(file, dir, keysFile);
      assert.deepEqual(got.map((r) => r.result), ['pass'], `${file}: ${got[0]?.detail ?? ''}`);
    }
  });
  it('a bare CR inside a line: OpenDKIM reads it unlike RFC 6376 (and Mail::DKIM, dkimpy, us) under relaxed; converted, all three verify', async (t) => {
    const message = Buffer.from('From: alice@example.com\r\nTo: bob@example.net\r\nSubject: progress\r\nContent-Type: text/plain\r\n\r\nprogress 10%\r20%\r30%\r\n', 'latin1');
    const keysFile = join(dir, 'test-public-keys.txt');
    writeFileSync(keysFile, `sel._domainkey.example.com ${formatKeyRecord(testKeys.rsa.key)}\n`);
    const asIs = join(dir, 'bare-cr-as-is.eml');
    writeFileSync(asIs, sign(message));
    const asIsResult = (await peers.openDkimVerify(asIs, dir, keysFile))[0]!.result;
    t.diagnostic(`OpenDKIM on a relaxed signature over a mid-line bare CR, signed as it came: ${asIsResult}`);
    const converted = await reencodeMessage(message);
    assert.ok(converted, 'a bare CR needs converting');
    assert.match(converted.message.toString('latin1'), /progress 10%=0D20%=0D30%\r\n/);
    const file = join(dir, 'bare-cr-converted.eml');
    writeFileSync(file, sign(converted.message));
    assert.deepEqual((await peers.openDkimVerify(file, dir, keysFile)).map((r) => r.result), ['pass']);
    for (const verifier of [peers.mailDkimVerify, peers.dkimpyVerify]) assert.deepEqual((await verifier([file, asIs], dns.port)).map((r) => r.result), ['pass', 'pass']);
  });
});


describe('through the out listener', () => {
  let dns: TestDns;
  let sink: Sink;
  const keyRecord = (dir: string): string => {
    const parsed = parsePrivateKey(readFileSync(join(dir, 'keys/example.com/s1.key')));
    if (!parsed.ok) throw new Error(parsed.message);
    return formatKeyRecord(parsed.key.key);
  };
  before(async () => {
    sink = await startSink();
  });
  after(async () => {
    await sink?.stop();
    await dns?.stop();
  });

  const toml = (extra: string): string => `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\n${extra}\n[domain."example.com"]\nselector = "s1"\n`;
  const eightBit = Buffer.from(
    [
      'From: Alice <alice@example.com>',
      'To: bob@example.net',
      'Subject: 8-bit through out',
      'MIME-Version: 1.0',
      'Content-Type: multipart/alternative; boundary="alt"',
      '',
      '--alt',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Grüße',
      '--alt',
      'Content-Type: text/html; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      '<p>ascii only</p>',
      '--alt--',
      '',
    ].join('\r\n'),
    'utf8',
  );

  it('"7bit" (the default): re-encodes, signs what it sends, and logs each part it changed', async () => {
    const proxy = await startProxy('out', toml(''), [{ domain: 'example.com', selector: 's1' }]);
    try {
      const before = sink.messages.length;
      const r = await send(proxy.port, 'alice@example.com', ['bob@example.net'], eightBit, ' BODY=8BITMIME');
      assert.deepEqual(r.data!.map((x) => x.code), [250]);
      const got = sink.messages[before]!.data;
      assert.equal(unfit(got), undefined);
      assert.match(got.toString('latin1'), /charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n--alt/);
      assert.match(got.toString('latin1'), /text\/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n<p>ascii only<\/p>/);
      assert.deepEqual(await meaning(got), await meaning(eightBit));
      dns = await startDnsmasq(new Map([['s1._domainkey.example.com', [keyRecord(proxy.dir.dir)]]]), ['example.com']);
      const file = join(proxy.dir.dir, 'sent.eml');
      writeFileSync(file, got);
      for (const verifier of [peers.mailDkimVerify, peers.dkimpyVerify]) assert.deepEqual((await verifier([file], dns.port)).map((x) => x.result), ['pass']);
      const line = proxy.logs.find((l) => l['msg'] === 'message relayed')!;
      assert.deepEqual(line['reencoded'], {
        because: '8-bit octets',
        parts: [
          { part: 2, type: 'text/plain', from: '8bit', to: 'quoted-printable', why: '8-bit octets' },
          { part: 3, type: 'text/html', from: '8bit', to: '7bit', why: 'declared 8bit or binary' },
        ],
      });
    } finally {
      await proxy.stop();
      await dns?.stop();
    }
  });

  it('"preserve": the bytes as they came; and a 7-bit message is never touched', async () => {
    const proxy = await startProxy('out', toml('transport_encoding = "preserve"'), [{ domain: 'example.com', selector: 's1' }]);
    const seven = await startProxy('out', toml(''), [{ domain: 'example.com', selector: 's1' }]);
    try {
      const before = sink.messages.length;
      await send(proxy.port, 'alice@example.com', ['bob@example.net'], eightBit);
      const got = sink.messages[before]!.data;
      assert.ok(got.subarray(got.length - eightBit.length).equals(eightBit));
      const clean = Buffer.from('From: alice@example.com\r\nTo: bob@example.net\r\nSubject: 7-bit\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n\r\nascii\r\n', 'latin1');
      await send(seven.port, 'alice@example.com', ['bob@example.net'], clean);
      const same = sink.messages[before + 1]!.data;
      assert.ok(same.subarray(same.length - clean.length).equals(clean));
      assert.match(same.toString('latin1'), /^DKIM-Signature: /);
      assert.equal(seven.logs.find((l) => l['msg'] === 'message relayed')!['reencoded'], undefined);
    } finally {
      await proxy.stop();
      await seven.stop();
    }
  });

  it('dkim-proxy sign --config converts as the proxy does, and says so on stderr; "preserve" does not', async () => {
    for (const [encoding, converts] of [['7bit', true], ['preserve', false]] as const) {
      const dir = makeConfigDir(toml(`transport_encoding = "${encoding}"`), [{ domain: 'example.com', selector: 's1' }]);
      try {
        const file = join(dir.dir, 'message.eml');
        writeFileSync(file, eightBit);
        const r = await cli(['sign', '--config', dir.file, file], undefined, dir.dir);
        assert.equal(r.code, 0, r.stderr);
        const out = Buffer.from(r.stdout, 'latin1');
        if (converts) {
          assert.match(r.stderr, /^re-encoded: part 2 \(text\/plain\) 8bit -> quoted-printable: 8-bit octets$/m);
          assert.match(r.stderr, /^re-encoded: part 3 \(text\/html\) 8bit -> 7bit: declared 8bit or binary$/m);
          assert.equal(unfit(out), undefined);
        } else {
          assert.doesNotMatch(r.stderr, /re-encoded/);
          assert.ok(out.subarray(out.length - eightBit.length).equals(eightBit));
        }
        const records = new Map([['s1._domainkey.example.com', [keyRecord(dir.dir)]]]);
        assert.deepEqual(results(await verify(out, {}, records, Math.floor(Date.now() / 1000))), ['pass']);
      } finally {
        rmSync(dir.dir, { recursive: true, force: true });
      }
    }
  });

  it('a message the converter cannot split goes as it came, signed over those bytes, with a warning (no 4xx that would only bring it back)', async () => {
    const proxy = await startProxy('out', toml(''), [{ domain: 'example.com', selector: 's1' }]);
    try {
      // A part whose header block is over the splitter's 1 MB limit for one MIME node.
      const huge = Buffer.from(`From: alice@example.com\r\nTo: bob@example.net\r\nSubject: unsplittable\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n${`X-Filler: ${'a'.repeat(70)}\r\n`.repeat(16_000)}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n--b--\r\n`, 'utf8');
      const before = sink.messages.length;
      const r = await send(proxy.port, 'alice@example.com', ['bob@example.net'], huge);
      assert.deepEqual(r.data!.map((x) => x.code), [250]);
      const got = sink.messages[before]!.data;
      assert.ok(got.subarray(got.length - huge.length).equals(huge), 'relayed byte for byte');
      const warning = proxy.logs.find((l) => l['msg'] === 'could not convert to 7-bit: signed and relayed as it came');
      assert.ok(warning, JSON.stringify(proxy.logs));
      assert.equal(warning['because'], '8-bit octets');
      assert.match(String(warning['err']), /header size/i);
      const records = new Map([['s1._domainkey.example.com', [keyRecord(proxy.dir.dir)]]]);
      assert.deepEqual(results(await verify(got, {}, records, Math.floor(Date.now() / 1000))), ['pass']);
    } finally {
      await proxy.stop();
    }
  });

  it('streams a 50 MB message with a 40 MB binary attachment: converted and signed, never held in memory twice', async (t) => {
    const { message, attachment } = largeEightBitMessage(40 * 1024 * 1024, 10 * 1024 * 1024);
    const dir = makeConfigDir(`workers = 1\n${toml('max_message_bytes = "60M"\nspool_threshold = "1M"')}\n[log]\nlevel = "info"\n`, [{ domain: 'example.com', selector: 's1' }]);
    const daemon = startDaemon(dir.file, dir.dir);
    try {
      const port = await daemon.port('out');
      const pid = daemon.child.pid!;
      const idleKb = statusKb(pid, 'VmRSS');
      const before = sink.messages.length;
      const c = await NextHop.open({ host: '127.0.0.1', port, name: 'large.test', timeoutMs: 120_000 });
      try {
        const [mail, rcpt, data] = await c.pipeline(['MAIL FROM:<alice@example.com> BODY=8BITMIME', 'RCPT TO:<bob@example.net>', 'DATA']);
        assert.deepEqual([mail!.code, rcpt!.code, data!.code], [250, 250, 354]);
        // In 1 MB pieces, as a client's socket would deliver them.
        const pieces = Array.from({ length: Math.ceil(message.length / (1 << 20)) }, (_, k) => message.subarray(k << 20, (k + 1) << 20));
        assert.equal((await c.body(pieces, 1))[0]!.code, 250);
      } finally {
        await c.quit();
      }
      const peakKb = statusKb(pid, 'VmHWM');
      const growthMb = (peakKb - idleKb) / 1024;
      t.diagnostic(`50 MB message (40 MB binary attachment) converted and signed: idle RSS ${(idleKb / 1024).toFixed(0)} MB, peak ${(peakKb / 1024).toFixed(0)} MB (+${growthMb.toFixed(0)} MB)`);
      const got = sink.messages[before]!.data;
      assert.equal(unfit(got), undefined);
      // The attachment arrives as base64 of the very same octets.
      const text = got.toString('latin1');
      const at = text.indexOf('Content-Transfer-Encoding: base64\r\n\r\n');
      assert.notEqual(at, -1);
      const b64 = text.slice(at + 'Content-Transfer-Encoding: base64\r\n\r\n'.length, text.indexOf('\r\n--=_large--'));
      const digest = (x: Buffer): string => createHash('sha256').update(x).digest('hex');
      assert.equal(digest(Buffer.from(b64, 'base64')), digest(attachment));
      const records = new Map([['s1._domainkey.example.com', [keyRecord(dir.dir)]]]);
      assert.deepEqual(results(await verify(got, {}, records, Math.floor(Date.now() / 1000))), ['pass']);
      const line = await daemon.waitFor((l) => l['msg'] === 'message relayed');
      assert.deepEqual((line['reencoded'] as { parts: { to: string }[] }).parts.map((p) => p.to), ['quoted-printable', 'base64']);
      // The raw and the converted message both held would be 100 MB and more. What grows is V8's heap
      // under the allocation rate (the same path with "preserve" grows about 30 MB); the bodies are on disk.
      assert.ok(growthMb < 75, `peak RSS grew by ${growthMb.toFixed(0)} MB over idle`);
    } finally {
      await daemon.stop();
      rmSync(dir.dir, { recursive: true, force: true });
    }
  });
});
