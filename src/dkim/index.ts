/** The DKIM engine's public surface. Pure: no sockets, files, clock or logger. */
export { parseTagList, type Tag, type TagListResult } from './tags.js';
export { parseCanonicalization, canonicalizeHeader, relaxedHeader, type Canon, type Canonicalization } from './canonicalize.js';
export { findBodyStart, parseHeaderBlock, selectHeaders, type HeaderField } from './headers.js';
export { BodyHashSet, createBodyHasher, hashBody, type BodyHasher, type BodyHashResult, type HashAlgorithm } from './bodyhash.js';
export { LineEndNormalizer, normalizeLineEnds } from './normalize.js';
export {
  parseSignature,
  SIGNING_ALGORITHMS,
  type DkimSignature,
  type PartialSignatureInfo,
  type SigningAlgorithm,
  type KeyType,
} from './signature.js';
export { parseKeyRecord, formatKeyRecord, publicKeyData, splitTxt, type DkimKeyRecord } from './keyrecord.js';
export { parsePrivateKey, generateSigningKey, KEY_KINDS, MIN_RSA_BITS, type KeyKind, type SigningKey } from './keys.js';
export { MessageSigner, PreparedSigner, signMessage, expandHeaderList, DEFAULT_SIGNED_HEADERS, SignRequestError, type SignRequest } from './sign.js';
export { MessageVerifier, verifyMessage, keyQueryName, DEFAULT_MAX_SIGNATURES, type KeyAnswer, type VerifyOptions } from './verify.js';
export { signHeaderData, verifyHeaderData } from './crypto.js';
export { headerHashInput } from './sign.js';
export {
  formatAuthenticationResults,
  formatAuthenticationResultsField,
  formatResinfo,
  dkimResinfos,
  skippedNote,
  commentText,
  pvalue,
  identity as addressPvalue,
  viewOutcome,
  outcomeFields,
  assertNever,
  type DkimOutcome,
  type DkimResult,
  type OutcomeView,
} from './results.js';
