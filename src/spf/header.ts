/**
 * How an SPF result is written: the `spf=` method result of
 * Authentication-Results (RFC 8601 §2.7.2: `smtp.mailfrom`, or `smtp.helo`
 * for the HELO identity) and the Received-SPF field (RFC 7208 §9.1) for the
 * tools that read that one instead.
 */
import { addressPvalue, commentText, pvalue } from '../dkim/index.js';
import type { SpfOutcome } from './evaluate.js';

export interface SpfClient {
  readonly ip: string;
  readonly helo: string;
}

/** What `smtp.mailfrom` holds: the MAIL FROM address, or only its domain. */
export type MailfromForm = 'address' | 'domain';

/**
 * `spf=<result> smtp.mailfrom=<address> (<reason>)`, or `smtp.helo=<name>`.
 * `domain` writes only MAIL FROM's domain there: OpenDMARC 1.4 (Debian 12's)
 * ignores a trusted SPF pass whose smtp.mailfrom has a local part.
 */
export function spfResinfo(o: SpfOutcome, form: MailfromForm = 'address'): string {
  const property = o.identity === 'mailfrom' ? `smtp.mailfrom=${form === 'domain' ? pvalue(o.domain) : addressPvalue(o.sender)}` : `smtp.helo=${pvalue(o.sender.slice(o.sender.indexOf('@') + 1))}`;
  return `spf=${o.result} ${property} (${commentText(o.reason)})`;
}

/** §9.1's key-value pairs: values are dot-atoms or quoted strings. */
function kv(value: string): string {
  return /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.@:]+$/.test(value) ? value : `"${value.replace(/["\\]/g, (c) => `\\${c}`).replace(/[^\x20-\x7e]/g, '?')}"`;
}

/** The whole Received-SPF field, with CRLF. */
export function receivedSpfField(o: SpfOutcome, client: SpfClient, receiver: string): string {
  const pairs = [
    `client-ip=${kv(client.ip)}`,
    `envelope-from=${kv(o.identity === 'mailfrom' ? o.sender : '')}`,
    `helo=${kv(client.helo)}`,
    ...(o.result === 'permerror' || o.result === 'temperror' ? [`problem=${kv(o.reason)}`] : []),
    ...(o.mechanism !== undefined ? [`mechanism=${kv(o.mechanism)}`] : []),
    `receiver=${kv(receiver)}`,
    `identity=${o.identity}`,
  ];
  return `Received-SPF: ${o.result} (${commentText(`${receiver}: ${o.reason}`)})\r\n\t${pairs.join(';\r\n\t')};\r\n`;
}
