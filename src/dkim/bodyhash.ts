/**
 * Streaming body canonicalization and hashing (RFC 6376 §3.4.3, §3.4.4, §3.7).
 *
 * The result never depends on how the body is chunked: state that straddles a
 * chunk boundary (a CR waiting for its LF, a whitespace run, empty lines that
 * may turn out to be trailing) is carried, and trailing empty lines are held
 * back until content follows or the body ends.
 *
 * Input must already use CRLF line ends (see normalize.ts). A lone CR or LF is
 * treated as an ordinary octet, as the RFC's line grammar implies.
 *
 * Speed: clean runs of a chunk go to the hash as one `subarray`, so only the
 * rare places that canonicalization changes are touched byte by byte.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Canon } from './canonicalize.js';
import { relaxedScanner, SLICE } from './wasm/relaxed.js';

export type HashAlgorithm = 'sha256' | 'sha1';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const TAB = 0x09;
const CRLF = Buffer.from('\r\n');
const SPACE = Buffer.from(' ');
const CR_ONLY = Buffer.from('\r');
const SP_SP = Buffer.from('  ');
const SP_CR = Buffer.from(' \r');

/** Where the canonicalizers put the canonical body: a hash, or (for explain) the octets themselves. */
interface CanonicalOutput {
  readonly length: number;
  write(chunk: Uint8Array): void;
  writeCrlfs(count: number): void;
  digest(): Buffer;
}

/** Hash of the canonical body, truncated at `l=` when a limit is given. */
class CanonicalSink implements CanonicalOutput {
  private readonly hash: Hash;
  private readonly limit: number | undefined;
  /** Canonical octets produced so far (all of them, not only those hashed). */
  length = 0;
  constructor(algorithm: HashAlgorithm, limit: number | undefined) {
    this.hash = createHash(algorithm);
    this.limit = limit;
  }

  write(chunk: Uint8Array): void {
    const before = this.length;
    this.length += chunk.length;
    if (this.limit === undefined) {
      this.hash.update(chunk);
      return;
    }
    if (before >= this.limit) return;
    const room = this.limit - before;
    this.hash.update(chunk.length <= room ? chunk : chunk.subarray(0, room));
  }

  writeCrlfs(count: number): void {
    for (let k = 0; k < count; k++) this.write(CRLF);
  }

  digest(): Buffer {
    return this.hash.digest();
  }
}

export interface BodyHashResult {
  readonly hash: Buffer;
  /** Length of the whole canonical body; compare with `l=`. */
  readonly canonicalLength: number;
}

export interface BodyHasher {
  update(chunk: Uint8Array): void;
  digest(): BodyHashResult;
}

/** The canonical octets kept, not hashed: `dkim-proxy explain` compares what the verifier hashed. */
class CanonicalCopy implements CanonicalOutput {
  private readonly chunks: Buffer[] = [];
  length = 0;

  write(chunk: Uint8Array): void {
    this.chunks.push(Buffer.from(chunk));
    this.length += chunk.length;
  }

  writeCrlfs(count: number): void {
    for (let k = 0; k < count; k++) this.write(CRLF);
  }

  digest(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** The canonical body itself, by the same canonicalizers that hash it. */
export function canonicalBody(body: Uint8Array, canon: Canon): Buffer {
  const copy = new CanonicalCopy();
  const c = canon === 'relaxed' ? new RelaxedBody(copy) : new SimpleBody(copy);
  c.update(body);
  return c.digest().hash;
}

export function createBodyHasher(canon: Canon, algorithm: HashAlgorithm, limit?: number): BodyHasher {
  const sink = new CanonicalSink(algorithm, limit);
  return canon === 'relaxed' ? new RelaxedBody(sink) : new SimpleBody(sink);
}

/**
 * `simple`: the body as is, except that trailing empty lines are dropped and
 * the body always ends in exactly one CRLF (an empty body becomes CRLF).
 */
class SimpleBody implements BodyHasher {
  private heldCrlfs = 0;
  private pendingCr = false;
  private done = false;

  private readonly sink: CanonicalOutput;
  constructor(sink: CanonicalOutput) {
    this.sink = sink;
  }

  update(chunk: Uint8Array): void {
    if (this.done) throw new Error('BodyHasher.update after digest');
    let start = 0;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk.length === 0) {
        this.pendingCr = true;
        return;
      }
      if (chunk[0] === LF) {
        this.heldCrlfs++;
        start = 1;
      } else {
        this.flushHeld();
        this.sink.write(CR_ONLY);
      }
    }
    // Peel the tail of CRLFs (and a final lone CR) off the chunk; it may be trailing.
    let end = chunk.length;
    let tailCr = false;
    if (end > start && chunk[end - 1] === CR) {
      tailCr = true;
      end--;
    }
    let crlfs = 0;
    while (end - start >= 2 && chunk[end - 1] === LF && chunk[end - 2] === CR) {
      end -= 2;
      crlfs++;
    }
    if (end > start) {
      this.flushHeld();
      this.sink.write(chunk.subarray(start, end));
    }
    this.heldCrlfs += crlfs;
    this.pendingCr = tailCr;
  }

  private flushHeld(): void {
    this.sink.writeCrlfs(this.heldCrlfs);
    this.heldCrlfs = 0;
  }

  digest(): BodyHashResult {
    if (this.done) throw new Error('BodyHasher.digest called twice');
    this.done = true;
    if (this.pendingCr) {
      this.flushHeld();
      this.sink.write(CR_ONLY);
    }
    // RFC 6376 §3.4.3: drop trailing empty lines; a missing final CRLF is added,
    // and an empty body becomes a single CRLF.
    this.sink.write(CRLF);
    return { hash: this.sink.digest(), canonicalLength: this.sink.length };
  }
}

const isWsp = (c: number): boolean => c === SP || c === TAB;
const isWspOrEol = (c: number): boolean => c === SP || c === TAB || c === CR || c === LF;

/**
 * `relaxed`: WSP runs become one SP, WSP at line ends goes, trailing empty lines
 * go; a non-empty body ends in CRLF, an empty one stays empty (RFC 6376 §3.4.4;
 * the order of the two steps is erratum 1384's point).
 */
class RelaxedBody implements BodyHasher {
  /** Line ends seen but not yet written: they may be trailing empty lines. */
  private heldCrlfs = 0;
  /** A WSP run not yet written: it vanishes if the line ends here. */
  private pendingWsp = false;
  /** A CR not yet known to start a CRLF. */
  private pendingCr = false;
  /** Whether any content octet has been written (decides the final CRLF). */
  private anyContent = false;
  private done = false;

  private readonly sink: CanonicalOutput;
  constructor(sink: CanonicalOutput) {
    this.sink = sink;
  }

  update(chunk: Uint8Array): void {
    if (this.done) throw new Error('BodyHasher.update after digest');
    const n = chunk.length;
    // Everything after the chunk's last content octet is WSP/CR/LF whose fate
    // depends on what follows: the byte-level machine carries it over.
    let tail = n;
    while (tail > 0 && isWspOrEol(chunk[tail - 1]!)) tail--;
    let i = 0;
    if (this.heldCrlfs > 0 || this.pendingWsp || this.pendingCr) {
      while (i < tail) {
        const c = chunk[i++]!;
        this.step(c);
        if (!isWspOrEol(c)) break;
      }
    }
    if (i < tail) {
      this.anyContent = true;
      this.fast(chunk, i, tail);
    }
    for (i = Math.max(i, tail); i < n; i++) this.step(chunk[i]!);
  }

  /**
   * Canonicalizes `chunk[pos, end)` where nothing is pending on entry and
   * `chunk[end - 1]` is content, so every line end inside is followed by content
   * (no trailing-line question) and every WSP run is followed by an octet here.
   */
  private fast(chunk: Uint8Array, pos: number, end: number): void {
    // Below a few hundred octets the copy into WebAssembly memory costs more than it saves.
    if (relaxedScanner !== null && end - pos >= 256) {
      while (pos < end) {
        let cut = Math.min(end, pos + SLICE);
        // Each slice must end on a content octet, like the region itself.
        while (cut > pos && isWspOrEol(chunk[cut - 1]!)) cut--;
        if (cut === pos) break; // a quarter megabyte of whitespace: leave it to the JS path
        this.sink.write(relaxedScanner.relax(chunk, pos, cut));
        pos = cut;
      }
      if (pos === end) return;
    }
    this.fastJs(chunk, pos, end);
  }

  private fastJs(chunk: Uint8Array, pos: number, end: number): void {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    // Next occurrences of the only patterns canonicalization changes; -2 = not searched yet.
    let tab = -2;
    let dbl = -2;
    let spCr = -2;
    const firstSpace = buf.indexOf(SP, pos);
    if (firstSpace === -1 || firstSpace >= end) {
      dbl = -1;
      spCr = -1;
    }
    while (pos < end) {
      if (tab !== -1 && tab < pos) tab = buf.indexOf(TAB, pos);
      if (dbl !== -1 && dbl < pos) dbl = buf.indexOf(SP_SP, pos);
      if (spCr !== -1 && spCr < pos) spCr = buf.indexOf(SP_CR, pos);
      let j = end;
      if (tab !== -1 && tab < j) j = tab;
      if (dbl !== -1 && dbl < j) j = dbl;
      if (spCr !== -1 && spCr < j) j = spCr;
      if (j >= end) break;
      // A run found by its TAB may start with the single SP before it.
      const runStart = j > pos && buf[j - 1] === SP ? j - 1 : j;
      if (runStart > pos) this.sink.write(buf.subarray(pos, runStart));
      let k = j;
      while (isWsp(buf[k]!)) k++;
      // k < end: chunk[end - 1] is content.
      if (!(buf[k] === CR && buf[k + 1] === LF)) this.sink.write(SPACE);
      pos = k;
    }
    if (pos < end) this.sink.write(buf.subarray(pos, end));
  }

  /** The reference state machine, one octet at a time. */
  private step(c: number): void {
    if (this.pendingCr) {
      this.pendingCr = false;
      if (c === LF) {
        // End of line: a WSP run before it is dropped.
        this.pendingWsp = false;
        this.heldCrlfs++;
        return;
      }
      this.content(CR_ONLY);
    }
    if (c === CR) {
      this.pendingCr = true;
    } else if (isWsp(c)) {
      this.pendingWsp = true;
    } else {
      this.content(Buffer.of(c));
    }
  }

  private content(octets: Buffer): void {
    this.sink.writeCrlfs(this.heldCrlfs);
    this.heldCrlfs = 0;
    if (this.pendingWsp) {
      this.sink.write(SPACE);
      this.pendingWsp = false;
    }
    this.sink.write(octets);
    this.anyContent = true;
  }

  digest(): BodyHashResult {
    if (this.done) throw new Error('BodyHasher.digest called twice');
    this.done = true;
    if (this.pendingCr) {
      this.pendingCr = false;
      this.content(CR_ONLY);
    }
    // Trailing WSP and empty lines are dropped; a non-empty body ends in one CRLF.
    if (this.anyContent) this.sink.write(CRLF);
    return { hash: this.sink.digest(), canonicalLength: this.sink.length };
  }
}

/** One-shot convenience: the body hash of a whole body. */
export function hashBody(body: Uint8Array, canon: Canon, algorithm: HashAlgorithm, limit?: number): BodyHashResult {
  const h = createBodyHasher(canon, algorithm, limit);
  h.update(body);
  return h.digest();
}

/**
 * The body hashes one message needs, one per canonicalization, hash and
 * `l=`: signatures (DKIM's and ARC's) that share one share a pass over the
 * body.
 */
export class BodyHashSet {
  private readonly hashers = new Map<string, BodyHasher>();
  private results: Map<string, BodyHashResult> | undefined;

  /** Registers a hash (before the body is fed) and returns its key. */
  want(canon: Canon, hash: HashAlgorithm, l: number | undefined): string {
    const key = `${canon}/${hash}/${l ?? ''}`;
    if (this.hashers.has(key)) return key;
    if (this.results !== undefined) throw new Error('BodyHashSet: a new hash was asked for after the body ended');
    this.hashers.set(key, createBodyHasher(canon, hash, l));
    return key;
  }

  update(chunk: Uint8Array): void {
    for (const h of this.hashers.values()) h.update(chunk);
  }

  /** The hash for a key from `want`; the first call ends the body. */
  result(key: string): BodyHashResult {
    this.results ??= new Map([...this.hashers].map(([k, h]) => [k, h.digest()] as const));
    const r = this.results.get(key);
    if (r === undefined) throw new Error(`BodyHashSet: no hash ${key} was asked for`);
    return r;
  }
}
