/**
 * [out] transport_encoding = "7bit" on the corpus (test/helpers/corpus.ts):
 * what needs converting is converted, the result is 7-bit clean with short
 * lines, its header fields are the sender's bar the Content-Transfer-Encoding
 * fields, mailparser reads the same message out of it, and what needs no
 * converting is left byte for byte. Signed after the conversion, it verifies
 * with Mail::DKIM, dkimpy and OpenDKIM.
 */
import assert from 'node:assert/strict';
import { isAscii } from 'node:buffer';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Splitter, type SplitterChunk } from '@zone-eu/mailsplit';
import { simpleParser } from 'mailparser';
import { findBodyStart, formatKeyRecord, parseHeaderBlock } from '../src/dkim/index.js';
import { isEightBitLabel } from '../src/mime/scan.js';
import { toSevenBit } from '../src/mime/seven-bit.js';
import { reencodeMessage } from '../src/pipeline/transport.js';
import { corpus, type CorpusMessage } from './helpers/corpus.js';
import { startDnsmasq, type TestDns } from './helpers/dns-server.js';
import { sign, testKeys, verify, results } from './helpers/engine.js';
import * as peers from './helpers/peers.js';

/** What a reader sees: mailparser's text, HTML, attachments and header fields (bar the ones the conversion may set). */
async function meaning(message: Buffer): Promise<unknown> {
  const parsed = await simpleParser(message, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
  return {
    text: parsed.text,
    html: parsed.html,
    headers: [...parsed.headers.entries()].filter(([key]) => key !== 'content-transfer-encoding' && key !== 'mime-version').map(([key, value]) => [key, JSON.stringify(value)]),
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
});
