/**
 * Benchmark messages: a text part plus a base64 attachment filling the rest,
 * as large mail usually is; `text` variants are all prose (the worst case for
 * relaxed canonicalization, which has to look at every space).
 */
const HEADERS = [
  'From: Alice Example <alice@example.com>',
  'To: Bob Example <bob@example.net>',
  'Cc: carol@example.net',
  'Subject: Quarterly report and the attachments we discussed',
  'Date: Sun, 22 Nov 2026 12:00:00 +0000',
  'Message-ID: <bench-1@example.com>',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="bench-boundary"',
  '',
  '',
].join('\r\n');

const PROSE =
  'The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs. \r\n' +
  'Sphinx of black quartz, judge my vow.  How vexingly quick daft zebras jump!\r\n' +
  'Indented line\tafter a tab, and a line ending in spaces   \r\n\r\n';

export function makeMessage(size: number, kind: 'mixed' | 'text' = 'mixed'): Buffer {
  const out = Buffer.allocUnsafe(size + 4096);
  let at = out.write(HEADERS, 'latin1');
  at += out.write('--bench-boundary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n', at, 'latin1');
  const textEnd = kind === 'text' ? size - 64 : Math.min(size - 64, at + 1024);
  while (at < textEnd) at += out.write(PROSE, at, 'latin1');
  if (kind === 'mixed' && at < size - 128) {
    at += out.write('--bench-boundary\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n', at, 'latin1');
    let seed = 12345;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    while (at < size - 40) {
      for (let k = 0; k < 76; k++) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        out[at++] = alphabet.charCodeAt(seed & 63);
      }
      out[at++] = 0x0d;
      out[at++] = 0x0a;
    }
  }
  at += out.write('--bench-boundary--\r\n', at, 'latin1');
  return out.subarray(0, at);
}
