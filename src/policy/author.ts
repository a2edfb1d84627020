/**
 * Whose mail is this? The author domain that picks the signing rules: the
 * From mailbox, or Sender when From holds several (RFC 5322 §3.6.2),
 * DKIM-PITFALLS 26. Encoded display names, quoted "@", comments and groups
 * are the address parser's job (nodemailer's), never a regex's.
 */
import { domainToASCII } from 'node:url';
import addressparser from 'nodemailer/lib/addressparser/index.js';
import type { HeaderField } from '../dkim/index.js';

export type AuthorResult =
  | { readonly ok: true; readonly domain: string; readonly address: string; readonly source: 'from' | 'sender' | 'envelope' }
  | { readonly ok: false; readonly reason: string };

/**
 * The one shape most mail has, `Display Name <local@domain>` or a bare
 * address, with nothing in it an address parser could read another way: no
 * quotes, comments, encoded words, commas, groups or folding. Anything else
 * goes to the parser. (A property test holds the two to the same answer.)
 */
const PLAIN_MAILBOX = /^[ \t]*(?:[A-Za-z0-9]+(?:[ \t][A-Za-z0-9]+)*[ \t]*<([A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)>|([A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+))[ \t]*\r\n$/;

export function mailboxes(field: HeaderField): string[] {
  const raw = field.raw.slice(field.raw.indexOf(':') + 1);
  const plain = PLAIN_MAILBOX.exec(raw);
  if (plain) return [(plain[1] ?? plain[2])!];
  const value = Buffer.from(raw, 'latin1')
    .toString('utf8')
    .replace(/\r?\n/g, '');
  return addressparser(value, { flatten: true })
    .map((a) => a.address)
    .filter((a) => a !== '');
}

/**
 * Names that domainToASCII returns as they are: lower-case letter-digit-hyphen
 * labels, none an A-label (`xn--` must decode), the last starting with a
 * letter (a last label that is a number, `123` or `0x7f`, makes the WHATWG
 * parser read the name as an IPv4 address). Most mail's domains are such
 * names, and the native call costs more than this test.
 */
const PLAIN_DOMAIN = /^(?:(?!xn--)[a-z0-9-]+\.)*(?!xn--)[a-z][a-z0-9-]*$/;

/** A name's A-label form, or '' for one that has none (WHATWG domainToASCII). */
export function asciiDomain(name: string): string {
  return PLAIN_DOMAIN.test(name) ? name : domainToASCII(name);
}

export function domainOf(address: string): string | null {
  const at = address.lastIndexOf('@');
  if (at <= 0) return null;
  const raw = address.slice(at + 1).replace(/\.$/, '');
  if (raw === '' || raw.startsWith('[')) return null; // no domain, or an address literal
  const ascii = asciiDomain(raw.toLowerCase());
  return ascii === '' ? null : ascii;
}

export function authorDomain(fields: readonly HeaderField[]): AuthorResult {
  const from = fields.filter((f) => f.key === 'from');
  if (from.length === 0) return { ok: false, reason: 'no From header' };
  if (from.length > 1) return { ok: false, reason: `${from.length} From headers (RFC 5322 allows one)` };
  const authors = mailboxes(from[0]!);
  if (authors.length === 0) return { ok: false, reason: 'From has no address' };
  let address = authors[0]!;
  let source: 'from' | 'sender' = 'from';
  if (authors.length > 1) {
    const sender = fields.filter((f) => f.key === 'sender');
    const senders = sender.length === 1 ? mailboxes(sender[0]!) : [];
    if (senders.length !== 1) return { ok: false, reason: `From has ${authors.length} addresses and there is no single Sender` };
    address = senders[0]!;
    source = 'sender';
  }
  const domain = domainOf(address);
  if (domain === null) return { ok: false, reason: `no usable domain in "${address}"` };
  return { ok: true, domain, address, source };
}

/**
 * The domain whose rules sign a message, as `[signing] match` says: the
 * From header's (RFC 5322.From, the default), the envelope sender's (a
 * bounce, MAIL FROM:<>, falls back to From: the reporting host's), or the
 * Sender field's single mailbox, then From's (DKIMproxy's sender map).
 */
export function signingIdentity(match: 'header_from' | 'envelope_from' | 'sender', fields: readonly HeaderField[], mailFrom: string): AuthorResult {
  if (match === 'envelope_from' && mailFrom !== '') {
    const domain = domainOf(mailFrom);
    return domain === null ? { ok: false, reason: `no usable domain in MAIL FROM <${mailFrom}>` } : { ok: true, domain, address: mailFrom, source: 'envelope' };
  }
  if (match === 'sender') {
    const sender = fields.filter((f) => f.key === 'sender');
    const boxes = sender.length === 1 ? mailboxes(sender[0]!) : [];
    const domain = boxes.length === 1 ? domainOf(boxes[0]!) : null;
    if (domain !== null) return { ok: true, domain, address: boxes[0]!, source: 'sender' };
  }
  return authorDomain(fields);
}
