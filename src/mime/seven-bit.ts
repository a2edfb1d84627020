/**
 * `[out] transport_encoding = "7bit"`: the message re-encoded so that no hop
 * has reason to change it after we sign (RFC 6376 §5.3). A hop without
 * 8BITMIME converts 8-bit parts to quoted-printable and Postfix breaks lines
 * over 998 octets; either breaks the body hash. So, part by part:
 *
 * - 8-bit or binary octets, NUL, bare CR or over-long lines in a part with no
 *   encoding (7bit, 8bit, binary or none): quoted-printable for text, base64
 *   for the rest;
 * - a part declared 8bit or binary whose octets are 7-bit safe: relabelled
 *   7bit (Postfix downgrades on the label alone);
 * - a base64 or quoted-printable part with over-long lines or stray octets:
 *   re-wrapped (base64) or decoded and encoded again (quoted-printable);
 * - a multipart or inline attached message declared 8bit or binary:
 *   relabelled 7bit; an attached message that is not inline (one part to
 *   mailparser) goes as base64 when a 7-bit hop would change anything in it.
 *
 * Only the Content-Transfer-Encoding fields change (and a message with no
 * MIME fields at all gains MIME-Version and one); every other header field,
 * boundary, preamble and part stays byte for byte.
 *
 * Two streaming passes of nodemailer's MIME splitter (the one mailparser is
 * built on) over the spooled message: the first finds what each part holds,
 * the second writes the parts, since a part's new header must go out before
 * its body. Memory stays at a few chunks, whatever the message's size.
 */
import { isAscii } from 'node:buffer';
import { Readable } from 'node:stream';
import { Splitter, type MimeNode, type SplitterChunk } from '@zone-eu/mailsplit';
import { Base64Encoder, Base64Rewrapper, QuotedPrintableEncoder, QuotedPrintableReencoder, type BodyEncoder } from './encoders.js';
import { LineCheck } from './lines.js';
import { isEightBitLabel, SevenBitScan, type ConversionNeed } from './scan.js';

/** One part the conversion changed, for the log and the metrics. */
export interface PartConversion {
  /** The part's place in the message: 1 is the message itself, then parts in order. */
  readonly part: number;
  readonly type: string;
  /** The Content-Transfer-Encoding before ('none' when it had none) and after. */
  readonly from: string;
  readonly to: string;
  readonly why: ConversionNeed | 'declared 8bit or binary';
}

/** What could not be made 7-bit clean: left as it is, and said so in the log. */
export interface LeftAsIs {
  readonly part: number;
  readonly why: string;
}

export interface SevenBitResult {
  readonly converted: readonly PartConversion[];
  readonly leftAsIs: readonly LeftAsIs[];
}

export interface SevenBitOutput {
  /** The message's own header block (its fields' CRLFs, without the empty line); called once, before any body. */
  head(block: Buffer): void | Promise<void>;
  body(chunk: Buffer): void | Promise<void>;
}

type Source = () => AsyncIterable<Buffer> | Iterable<Buffer>;

interface PartFacts {
  readonly type: string;
  readonly label: string;
  readonly container: boolean;
  readonly root: boolean;
  readonly mime: boolean;
  /** An attached message that stays one part (mailparser's view: an attachment) is also checked for 8bit labels inside it. */
  readonly check: LineCheck | SevenBitScan;
}

type Action =
  | { readonly kind: 'keep' }
  | { readonly kind: 'relabel' }
  | { readonly kind: 'encode'; readonly to: 'quoted-printable' | 'base64'; readonly why: ConversionNeed }
  | { readonly kind: 'rewrap'; readonly to: 'quoted-printable' | 'base64'; readonly why: ConversionNeed };

/**
 * The part tree as mailparser sees it (the same splitter, the same options):
 * an attached message is split into its own parts only when it is inline;
 * otherwise it is one part, an attachment, and if a 7-bit hop would change
 * anything in it (Postfix's downgrade descends into it) it goes as base64,
 * which keeps its octets whole for the reader.
 */
function split(source: Source): Splitter {
  const splitter = new Splitter();
  const input = Readable.from(source());
  input.on('error', (err) => splitter.destroy(err));
  input.pipe(splitter);
  return splitter;
}

function factsOf(node: MimeNode): Omit<PartFacts, 'check'> {
  const label = typeof node.encoding === 'string' ? node.encoding.trim().toLowerCase() : '';
  return {
    type: node.contentType || 'text/plain',
    label,
    container: Boolean(node.multipart) || node.messageNode === true,
    root: node.root,
    mime: !node.root || node.headers.hasHeader('mime-version') || node.headers.hasHeader('content-type') || label !== '',
  };
}

function actionFor(part: PartFacts, unsafe: ConversionNeed | undefined): Action {
  const eightBitLabel = isEightBitLabel(part.label);
  if (part.container) return eightBitLabel ? { kind: 'relabel' } : { kind: 'keep' };
  if (part.label === 'quoted-printable' || part.label === 'base64') return unsafe ? { kind: 'rewrap', to: part.label, why: unsafe } : { kind: 'keep' };
  if (part.label === '' || part.label === '7bit' || eightBitLabel) {
    if (unsafe) return { kind: 'encode', to: part.type.startsWith('text/') ? 'quoted-printable' : 'base64', why: unsafe };
    return eightBitLabel ? { kind: 'relabel' } : { kind: 'keep' };
  }
  return { kind: 'keep' };
}

function encoderFor(action: Action): BodyEncoder | undefined {
  switch (action.kind) {
    case 'encode':
      return action.to === 'base64' ? new Base64Encoder() : new QuotedPrintableEncoder();
    case 'rewrap':
      return action.to === 'base64' ? new Base64Rewrapper() : new QuotedPrintableReencoder();
    default:
      return undefined;
  }
}

/** Sets the part's Content-Transfer-Encoding, in its own place (after the others, when it had none). */
function setEncoding(node: MimeNode, value: string, addMimeVersion: boolean): void {
  if (node.headers.hasHeader('content-transfer-encoding')) {
    node.headers.update('Content-Transfer-Encoding', value);
    return;
  }
  const count = (): number => node.headers.getList().length;
  if (addMimeVersion) node.headers.add('MIME-Version', '1.0', count());
  node.headers.add('Content-Transfer-Encoding', value, count());
}

/** The first pass: what each part is and holds. */
async function survey(source: Source): Promise<{ parts: PartFacts[]; unsafe: (ConversionNeed | undefined)[]; between: LineCheck; eightBitHeaders: number[] }> {
  const parts: PartFacts[] = [];
  const between = new LineCheck();
  const eightBitHeaders: number[] = [];
  for await (const chunk of split(source) as AsyncIterable<SplitterChunk>) {
    if (chunk.type === 'node') {
      const facts = factsOf(chunk);
      // The message's own header block is the sender's to keep (SMTPUTF8); a part's or an attached message's is noted.
      if (parts.length > 0 && !isAscii(chunk.getHeaders())) eightBitHeaders.push(parts.length + 1);
      parts.push({ ...facts, check: facts.type === 'message/rfc822' && !facts.container ? new SevenBitScan([]) : new LineCheck() });
    }
    else if (chunk.type === 'body') parts[parts.length - 1]?.check.update(chunk.value);
    else between.update(chunk.value);
  }
  return { parts, unsafe: parts.map((p) => p.check.end()), between, eightBitHeaders };
}

/**
 * Writes the message in 7-bit form to `out`. `source` gives the whole
 * message (header block, empty line, body), CRLF line ends, and is read twice.
 */
export async function toSevenBit(source: Source, out: SevenBitOutput): Promise<SevenBitResult> {
  const { parts, unsafe, between, eightBitHeaders } = await survey(source);
  const converted: PartConversion[] = [];
  const leftAsIs: LeftAsIs[] = [];
  const betweenUnsafe = between.end();
  if (betweenUnsafe) leftAsIs.push({ part: 1, why: `${betweenUnsafe} outside any part (preamble, epilogue or boundary lines)` });
  for (const part of eightBitHeaders) leftAsIs.push({ part, why: '8-bit octets in its header fields (header fields are not re-encoded)' });

  let index = -1;
  let encoder: BodyEncoder | undefined;
  /** What ends a re-encoded single-part message's last line: its own CRLF in base64, a soft line break in quoted-printable. */
  let rootEnding: string | undefined;
  let lastOut: number | undefined;
  const write = async (chunk: Buffer | undefined): Promise<void> => {
    if (chunk === undefined || chunk.length === 0) return;
    lastOut = chunk[chunk.length - 1];
    await out.body(chunk);
  };
  const finishPart = async (): Promise<void> => {
    if (encoder) await write(encoder.end());
    encoder = undefined;
  };

  for await (const chunk of split(source) as AsyncIterable<SplitterChunk>) {
    if (chunk.type !== 'node') {
      if (chunk.type === 'data') await finishPart();
      await write(encoder && chunk.type === 'body' ? encoder.push(chunk.value) : chunk.value);
      continue;
    }
    await finishPart();
    index++;
    const part = parts[index];
    if (part === undefined) throw new Error('the MIME splitter found a part the first pass did not');
    const action = actionFor(part, unsafe[index]);
    const number = index + 1;
    if (action.kind === 'keep' && unsafe[index] !== undefined && !part.container) leftAsIs.push({ part: number, why: `${unsafe[index]!} in a part encoded as ${part.label}` });
    if (action.kind === 'relabel') {
      setEncoding(chunk, '7bit', false);
      converted.push({ part: number, type: part.type, from: part.label, to: '7bit', why: 'declared 8bit or binary' });
    } else if (action.kind === 'encode' || action.kind === 'rewrap') {
      if (action.kind === 'encode') setEncoding(chunk, action.to, part.root && !part.mime);
      converted.push({ part: number, type: part.type, from: part.label || 'none', to: action.to, why: action.why });
      encoder = encoderFor(action);
      if (part.root && !part.container) rootEnding = action.to === 'base64' ? '\r\n' : '=\r\n';
    }
    const header = chunk.getHeaders();
    if (part.root && index === 0) {
      // The message's own header block goes to the processors apart from its empty line.
      await out.head(header.subarray(0, header.length - 2));
      lastOut = 0x0a;
    } else {
      await write(header);
    }
  }
  await finishPart();
  if (rootEnding !== undefined && lastOut !== 0x0a) await write(Buffer.from(rootEnding));
  return { converted, leftAsIs };
}
