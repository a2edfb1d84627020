/**
 * RFC 6376 §3.4 header canonicalization. Body canonicalization streams and
 * lives in bodycanon.ts.
 */
import { asciiLower } from './headers.js';

export type Canon = 'simple' | 'relaxed';

export interface Canonicalization {
  readonly header: Canon;
  readonly body: Canon;
}

/**
 * Parses a `c=` value. RFC 6376 §3.5: absent means simple/simple, and a lone
 * algorithm names the header canonicalization with a simple body.
 */
export function parseCanonicalization(value: string | undefined): Canonicalization | null {
  if (value === undefined) return { header: 'simple', body: 'simple' };
  const parts = value.split('/');
  if (parts.length > 2) return null;
  const header = parts[0];
  const body = parts[1] ?? 'simple';
  if (!isCanon(header) || !isCanon(body)) return null;
  return { header, body };
}

const isCanon = (v: string | undefined): v is Canon => v === 'simple' || v === 'relaxed';

/** `simple`: the field exactly as it is. */
export function simpleHeader(raw: string): string {
  return raw;
}

/**
 * `relaxed` (RFC 6376 §3.4.2): lower-case name; unfold; reduce WSP runs to one
 * SP; drop WSP at the end of the value and around the colon. The result ends
 * in CRLF (callers strip it for the DKIM-Signature itself, §3.7).
 */
export function relaxedHeader(raw: string): string {
  const colon = raw.indexOf(':');
  const rawName = colon === -1 ? raw : raw.slice(0, colon);
  let value = colon === -1 ? '' : raw.slice(colon + 1);
  const name = asciiLower(isWsp(rawName.charCodeAt(rawName.length - 1)) ? rawName.replace(/[ \t\r\n]+$/, '') : rawName);
  if (value.endsWith('\r\n')) value = value.slice(0, -2);
  if (FOLDED_OR_RUNS.test(value)) {
    value = value.replace(/\r\n/g, '').replace(/[ \t]+/g, ' ');
  }
  // No tab, CRLF or run of spaces is left: at most one space at either end.
  if (value.charCodeAt(0) === 0x20) value = value.slice(1);
  if (value.charCodeAt(value.length - 1) === 0x20) value = value.slice(0, -1);
  return `${name}:${value}\r\n`;
}

/** What needs the full rewrite; most fields (one line, single spaces) have none of it. */
const FOLDED_OR_RUNS = /\r\n|\t| {2}/;
const isWsp = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;

export function canonicalizeHeader(raw: string, canon: Canon): string {
  return canon === 'relaxed' ? relaxedHeader(raw) : simpleHeader(raw);
}
