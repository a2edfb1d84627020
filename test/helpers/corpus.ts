/**
 * The MIME corpus of the 7-bit conversion tests, generated (the same every
 * run, from a fixed seed): the suite's signing shapes, messages composed by
 * nodemailer (7-bit clean, as it writes them), and random trees of parts with
 * every Content-Transfer-Encoding and content that a hop would change: 8-bit
 * text in three charsets, binary attachments declared 8bit or binary, lines
 * of 1,000 to 3,000 octets, bare CR, NUL, base64 on one endless line, raw
 * 8-bit octets inside quoted-printable, attached messages, format=flowed.
 */
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import * as libbase64 from 'libbase64';
import * as libqp from 'libqp';
import { normalizeLineEnds } from '../../src/dkim/index.js';
import { MESSAGES } from './messages.js';

export interface CorpusMessage {
  readonly name: string;
  /** Wire form: CRLF line ends. */
  readonly message: Buffer;
}

/** mulberry32: small, fast and the same everywhere. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;
const int = (rng: Rng, lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));

const WORDS = ['mail', 'proxy', 'signature', 'hop', 'relay', 'header', 'body', 'line', 'quoted', 'printable', 'From', '.', '=', 'end', 'a', 'the'];
const UTF8_WORDS = ['Grüße', 'Köln', 'naïve', 'façade', '東京', 'Ελληνικά', 'русский', '🎉', 'déjà', 'smørrebrød'];
const LATIN1_WORDS = ['Grüße', 'Köln', 'naïve', 'façade', 'déjà', 'señor'];

function textLines(rng: Rng, words: readonly string[], lines: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const n = int(rng, 0, 12);
    let line = Array.from({ length: n }, () => pick(rng, words)).join(' ');
    if (rng() < 0.1) line += '   '; // trailing spaces
    if (rng() < 0.05) line = `From ${line}`;
    if (rng() < 0.05) line = `.${line}`;
    out.push(line);
  }
  return out;
}

type ContentKind = 'ascii' | 'utf8' | 'latin1' | 'long' | 'bare-cr' | 'nul' | 'binary' | 'flowed';

function content(rng: Rng, kind: ContentKind): Buffer {
  switch (kind) {
    case 'ascii':
      return Buffer.from(textLines(rng, WORDS, int(rng, 1, 30)).join('\r\n') + '\r\n', 'latin1');
    case 'utf8':
      return Buffer.from(textLines(rng, [...WORDS, ...UTF8_WORDS], int(rng, 1, 30)).join('\r\n') + '\r\n', 'utf8');
    case 'latin1':
      return Buffer.from(textLines(rng, [...WORDS, ...LATIN1_WORDS], int(rng, 1, 20)).join('\r\n') + '\r\n', 'latin1');
    case 'long': {
      const lines = textLines(rng, WORDS, int(rng, 1, 5));
      lines.splice(int(rng, 0, lines.length), 0, 'x'.repeat(int(rng, 1000, 3000)), Array.from({ length: 400 }, () => pick(rng, WORDS)).join(' '));
      return Buffer.from(lines.join('\r\n') + '\r\n', 'latin1');
    }
    case 'bare-cr':
      return Buffer.from(textLines(rng, WORDS, int(rng, 2, 10)).join('\r\n').replace(/ /, ' \r ') + '\r\nprogress 10%\r20%\r30%\r\n', 'latin1');
    case 'nul':
      return Buffer.from(textLines(rng, WORDS, int(rng, 2, 10)).join('\r\n') + '\r\nnul\0here\r\n', 'latin1');
    case 'binary':
      return normalizeLineEnds(Buffer.from(Array.from({ length: int(rng, 0, 3000) }, () => int(rng, 0, 255))));
    case 'flowed':
      return Buffer.from(['This paragraph is flowed, ', 'so its soft breaks end ', 'with a space. Grüße', '', '> quoted ', '> text'].join('\r\n') + '\r\n', 'utf8');
  }
}

interface Part {
  readonly headers: string[];
  readonly body: Buffer;
}

const TEXT_KINDS: readonly ContentKind[] = ['ascii', 'utf8', 'latin1', 'long', 'bare-cr', 'nul', 'flowed'];

function leaf(rng: Rng, seq: { n: number }): Part {
  const binary = rng() < 0.3;
  const kind: ContentKind = binary ? 'binary' : pick(rng, TEXT_KINDS);
  const raw = content(rng, kind);
  const charset = kind === 'latin1' ? 'iso-8859-1' : 'utf-8';
  const type = binary
    ? pick(rng, [`application/octet-stream; name="file${seq.n}.bin"`, `image/png; name="image${seq.n}.png"`, 'application/pdf'])
    : kind === 'flowed'
      ? `text/plain; charset=${charset}; format=flowed`
      : pick(rng, [`text/plain; charset=${charset}`, `text/html; charset=${charset}`, 'text/plain']);
  seq.n++;
  const headers = [`Content-Type: ${type}`];
  if (binary) headers.push(`Content-Disposition: attachment; filename="file${seq.n}.bin"`);
  const cte = binary ? pick(rng, ['base64', 'base64-one-line', 'binary', '8bit']) : pick(rng, ['none', '7bit', '8bit', 'binary', 'quoted-printable', 'qp-raw-8bit', 'base64']);
  let body: Buffer;
  switch (cte) {
    case 'base64':
      body = Buffer.from(libbase64.wrap(libbase64.encode(raw), 76), 'latin1');
      headers.push('Content-Transfer-Encoding: base64');
      break;
    case 'base64-one-line':
      // What some generators write: base64 with no line breaks at all.
      body = Buffer.from(libbase64.encode(raw), 'latin1');
      headers.push('Content-Transfer-Encoding: base64');
      break;
    case 'quoted-printable':
      body = Buffer.from(libqp.wrap(libqp.encode(raw), 76), 'latin1');
      headers.push('Content-Transfer-Encoding: quoted-printable');
      break;
    case 'qp-raw-8bit':
      // Quoted-printable with 8-bit octets left raw in it, as some mailers write.
      body = raw;
      headers.push('Content-Transfer-Encoding: quoted-printable');
      break;
    case 'none':
      body = raw;
      break;
    default:
      body = raw;
      headers.push(`Content-Transfer-Encoding: ${cte}`);
  }
  // The CRLF before a boundary belongs to the boundary: a body ending in one keeps it as content.
  return { headers, body };
}

function tree(rng: Rng, depth: number, seq: { n: number }): Part {
  const r = rng();
  if (depth >= 2 || r < 0.45) return leaf(rng, seq);
  if (r < 0.55) {
    // An attached message, parsed as one: its headers are 7-bit, its body any leaf.
    const inner = leaf(rng, seq);
    const innerMessage = Buffer.concat([Buffer.from(['From: inner@example.org', `Subject: attached ${seq.n}`, 'MIME-Version: 1.0', ...inner.headers, '', ''].join('\r\n'), 'latin1'), inner.body]);
    return { headers: ['Content-Type: message/rfc822', ...(rng() < 0.5 ? ['Content-Transfer-Encoding: 8bit'] : [])], body: innerMessage };
  }
  const boundary = `=_b${seq.n++}_${Math.floor(rng() * 1e9).toString(36)}`;
  const subtype = pick(rng, ['mixed', 'alternative', 'related']);
  const children = Array.from({ length: int(rng, 1, 4) }, () => tree(rng, depth + 1, seq));
  const pieces: Buffer[] = [];
  if (rng() < 0.5) pieces.push(Buffer.from('This is a multi-part message in MIME format.\r\n', 'latin1'));
  for (const c of children) {
    pieces.push(Buffer.from(`--${boundary}\r\n${c.headers.join('\r\n')}\r\n\r\n`, 'latin1'), c.body, Buffer.from('\r\n', 'latin1'));
  }
  pieces.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  if (rng() < 0.3) pieces.push(Buffer.from('epilogue\r\n', 'latin1'));
  const cte = pick(rng, [[], [], ['Content-Transfer-Encoding: 7bit'], ['Content-Transfer-Encoding: 8bit'], ['Content-Transfer-Encoding: binary']]);
  return { headers: [`Content-Type: multipart/${subtype}; boundary="${boundary}"`, ...cte], body: Buffer.concat(pieces) };
}

function generated(count: number, seed: number): CorpusMessage[] {
  const rng = prng(seed);
  const out: CorpusMessage[] = [];
  for (let i = 0; i < count; i++) {
    const seq = { n: 0 };
    const root = tree(rng, 0, seq);
    const subject = rng() < 0.2 ? 'Subject: Grüße aus Köln (raw UTF-8, as SMTPUTF8 allows)' : `Subject: generated ${i}`;
    const mime = rng() < 0.1 && root.headers.length === 1 && root.headers[0] === 'Content-Type: text/plain' ? [] : ['MIME-Version: 1.0', ...root.headers];
    const head = ['From: Alice <alice@example.com>', 'To: bob@example.net', subject, 'Date: Tue, 01 Dec 2026 12:00:00 +0000', `Message-ID: <gen${i}@example.com>`, ...mime];
    const message = Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n', 'utf8'), root.body]);
    // As on the wire, where the CRLF before the final dot ends the last line.
    out.push({ name: `generated ${i}`, message: message.subarray(-2).equals(Buffer.from('\r\n')) ? message : Buffer.concat([message, Buffer.from('\r\n')]) });
  }
  return out;
}

async function composed(): Promise<CorpusMessage[]> {
  const shapes = [
    { text: 'Plain text from nodemailer.\nSecond line.' },
    { text: 'Grüße — UTF-8 text, which nodemailer writes as quoted-printable.', html: '<p>Grüße <b>bold</b></p>' },
    { html: `<p>${'long html line '.repeat(200)}</p>` },
    { text: 'With an attachment', attachments: [{ filename: 'data.bin', content: Buffer.from(Array.from({ length: 5000 }, (_, k) => (k * 7) % 256)) }] },
    { text: 'Nested', attachments: [{ filename: 'note.txt', content: 'plain attachment\r\n' }, { filename: 'msg.eml', contentType: 'message/rfc822', content: 'Subject: inner\r\n\r\ninner body\r\n' }] },
  ];
  const out: CorpusMessage[] = [];
  for (const [k, shape] of shapes.entries()) {
    const mail = new MailComposer({ from: 'alice@example.com', to: 'bob@example.net', subject: `composed ${k}`, messageId: `<c${k}@example.com>`, date: new Date('2026-12-01T12:00:00Z'), ...shape });
    const built = await new Promise<Buffer>((resolve, reject) => mail.compile().build((err, message) => (err ? reject(err) : resolve(message))));
    out.push({ name: `composed ${k}`, message: normalizeLineEnds(built) });
  }
  return out;
}

/** The whole corpus: the signing shapes, nodemailer's messages and 150 generated trees. */
export async function corpus(): Promise<CorpusMessage[]> {
  return [
    ...Object.entries(MESSAGES).map(([name, text]) => ({ name: `shape ${name}`, message: Buffer.from(text, 'latin1') })),
    ...(await composed()),
    ...generated(150, 20261202),
  ];
}

/**
 * A large 8-bit message for the streaming case: a UTF-8 text part declared
 * 8bit and an attachment of `attachmentBytes` raw octets declared binary
 * (no CR or LF in it, so receipt leaves it as it is). `seed` makes the bytes.
 */
export function largeEightBitMessage(attachmentBytes: number, textBytes: number, seed = 7): { message: Buffer; attachment: Buffer } {
  const rng = prng(seed);
  const attachment = Buffer.allocUnsafe(attachmentBytes);
  for (let i = 0; i < attachmentBytes; i += 4) attachment.writeUInt32LE(Math.floor(rng() * 4294967296), i < attachmentBytes - 3 ? i : attachmentBytes - 4);
  for (let i = 0; i < attachmentBytes; i++) if (attachment[i] === 0x0a || attachment[i] === 0x0d) attachment[i] = 0x20;
  const line = Buffer.from('Grüße aus Köln — a line of 8-bit text, sent as it was written.\r\n', 'utf8');
  const text = Buffer.concat(Array.from({ length: Math.max(1, Math.round(textBytes / line.length)) }, () => line));
  const head = [
    'From: Alice <alice@example.com>',
    'To: bob@example.net',
    'Subject: large 8-bit message',
    'Date: Tue, 01 Dec 2026 12:00:00 +0000',
    'Message-ID: <large@example.com>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="=_large"',
    '',
    '--=_large',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    '',
  ].join('\r\n');
  const middle = '\r\n--=_large\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="large.bin"\r\nContent-Transfer-Encoding: binary\r\n\r\n';
  return { message: Buffer.concat([Buffer.from(head, 'latin1'), text, Buffer.from(middle, 'latin1'), attachment, Buffer.from('\r\n--=_large--\r\n', 'latin1')]), attachment };
}
