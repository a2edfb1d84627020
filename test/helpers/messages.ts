/**
 * The message shapes the suite signs and verifies, ours and the other
 * implementations': each one stresses a different part of canonicalization.
 */
const crlf = (lines: string[]): string => lines.join('\r\n');

const base = ['From: Alice Example <alice@example.com>', 'To: bob@example.net', 'Subject: Test message', 'Date: Sun, 22 Nov 2026 12:00:00 +0000', 'Message-ID: <t1@example.com>'];

function utf8(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

/** Latin1 strings (one char per octet), CRLF line ends. */
export const MESSAGES: Record<string, string> = {
  plain: crlf([...base, '', 'Hello Bob,', '', 'See you tomorrow.', '', '-- ', 'Alice', '']),
  'empty body': crlf([...base, '', '']),
  'no body separator': crlf([...base, '']),
  'trailing whitespace': crlf([...base, '', 'line with trailing spaces   ', 'tab\tinside and  double  spaces\t', '   ', '\t', '', '', '']),
  'folded headers': crlf([
    'From: "A very long display name that goes on" <alice@example.com>',
    'To: one@example.net,\r\n  two@example.net,\r\n\tthree@example.net',
    'Subject: a subject that is folded\r\n over two lines',
    'List-Unsubscribe:\r\n <https://example.com/unsubscribe?id=1234567890>',
    'Date: Sun, 22 Nov 2026 12:00:00 +0000',
    '',
    'Body.',
    '',
  ]),
  'duplicate headers': crlf([
    'Received: from a by b; Sun, 22 Nov 2026 12:00:00 +0000',
    'Received: from c by d; Sun, 22 Nov 2026 11:59:00 +0000',
    ...base,
    'Comments: first',
    'Comments: second',
    '',
    'Body with dups.',
    '',
  ]),
  '8bit utf-8': utf8(
    crlf([
      'From: =?UTF-8?Q?J=C3=BCrgen?= <juergen@example.com>',
      'To: bob@example.net',
      'Subject: Grüße aus Köln',
      'Date: Sun, 22 Nov 2026 12:00:00 +0000',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Schöne Grüße — 東京から 🎉',
      'Ünïcödé  with  spaces ',
      '',
    ]),
  ),
  multipart: crlf([
    ...base,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    'This is a multi-part message in MIME format.',
    '--b1',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'The text part.',
    '.A line that starts with a dot',
    '--b1',
    'Content-Type: application/octet-stream',
    'Content-Transfer-Encoding: base64',
    '',
    'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4',
    'OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3Bx',
    '--b1--',
    '',
  ]),
};
