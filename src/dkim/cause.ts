/**
 * Why a signature did not pass, in one word from a fixed list, and what to
 * do about it: the answer to "why does DKIM fail?" that `dkim-proxy explain`
 * prints and `in` records in its log and Authentication-Results, so that a
 * postmaster can find the pattern across messages.
 */
import { assertNever, type DkimOutcome } from './results.js';

export const CAUSES = [
  'ok',
  'body-changed',
  'header-changed',
  'key-missing',
  'key-mismatch',
  'key-revoked',
  'key-syntax',
  'expired',
  'future',
  'syntax',
  'dns-temporary',
  'weak-key',
  'sha1',
  'unsupported',
] as const;
export type Cause = (typeof CAUSES)[number];

/** Tags whose value we do not support, as opposed to ones that are malformed. */
const UNSUPPORTED = /^(a|v|c|q)=: (unsupported|unknown|no supported)/;

export function causeOf(o: DkimOutcome): Cause {
  switch (o.result) {
    case 'pass':
      return 'ok';
    case 'fail': {
      const reason = o.reason;
      switch (reason) {
        case 'body hash did not verify':
        case 'l= exceeds the body length':
          return 'body-changed';
        case 'signature did not verify':
          return o.keyMatches === false ? 'key-mismatch' : 'header-changed';
      }
      return assertNever(reason);
    }
    case 'policy':
      return o.reason === 'rsa-sha1 is not accepted (RFC 8301)' ? 'sha1' : 'weak-key';
    case 'temperror':
      return 'dns-temporary';
    case 'permerror': {
      const reason = o.reason;
      switch (reason) {
        case 'signature syntax':
          return UNSUPPORTED.test(o.detail ?? '') ? 'unsupported' : 'syntax';
        case 'signature expired':
          return 'expired';
        case 'no key':
          return 'key-missing';
        case 'key revoked':
          return 'key-revoked';
        case 'key syntax':
          return 'key-syntax';
        case 'key does not fit the signature':
          return 'key-mismatch';
      }
      return assertNever(reason);
    }
    default:
      return assertNever(o);
  }
}

/** The fix, in a sentence, for each cause. */
export const FIX: Record<Cause, string> = {
  ok: 'Nothing to do.',
  'body-changed':
    'Something after the signer changed the body (8-bit re-encoded to quoted-printable, long lines wrapped, a footer added, line ends rewritten): sign last, with the body 7-bit clean and lines under 998 octets.',
  'header-changed': 'A signed header field was changed or refolded on the way: sign with relaxed header canonicalization, and sign after anything that rewrites headers.',
  'key-missing': 'No key record at the selector: publish it (dkim-proxy keygen or rotate new prints it), or sign with a selector that is published.',
  'key-mismatch': 'The published key is not the one that signed: publish the public half of the signing key (dkim-proxy dns-check tells which), or sign with the matching selector.',
  'key-revoked': 'The record has an empty p=: the key was revoked. Sign with a current selector.',
  'key-syntax': 'The key record does not parse: republish it as dkim-proxy keygen prints it.',
  expired: 'The signature expired (x=) before it was verified: sign with a longer expiry, or none.',
  future: "The signature's time (t=) is in the future: the signer's clock is wrong; set it right (NTP).",
  syntax: 'The DKIM-Signature field is malformed: the signer is broken, or a hop rewrote the field.',
  'dns-temporary': 'The key could not be looked up just now: a DNS problem; try again later, or check the resolver.',
  'weak-key': 'The key is shorter than 1024 bits, which RFC 8301 refuses: publish a 2048-bit key and sign with it.',
  sha1: 'rsa-sha1 is refused by RFC 8301: sign with rsa-sha256.',
  unsupported: 'The signature uses an algorithm, version or canonicalization we do not support: sign with rsa-sha256 or ed25519-sha256, relaxed or simple.',
};
