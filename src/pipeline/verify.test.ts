import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseHeaderBlock } from '../dkim/index.js';
import { sign } from '../../test/helpers/engine.js';
import { MESSAGES } from '../../test/helpers/messages.js';
import { processMessage } from './offline.js';
import { VerifyingProcessor } from './verify.js';

const settings = { authservId: 'mx.test', maxSignatures: 10, allowSha1: false, allowShortKeys: false };

describe('the verifying processor', () => {
  it('a lookup that throws is a fault of finish(), never an unhandled rejection, also when finish() is never called', async () => {
    const signed = sign(MESSAGES['plain']!);
    const failing = new VerifyingProcessor({ settings: () => settings, lookup: () => Promise.reject(new Error('resolver bug')), now: () => 1_790_000_000 });
    await assert.rejects(processMessage(failing, signed), /resolver bug/);
    // Started, then abandoned (a message refused for its size, say): the process must go on.
    const head = signed.subarray(0, signed.indexOf('\r\n\r\n') + 2);
    await failing.start({ block: head, fields: parseHeaderBlock(head.toString('latin1')) }, { clientAddress: undefined, helo: undefined, mailFrom: '', rcptTo: [] });
    await new Promise((r) => setImmediate(r));
  });

  it('removes Authentication-Results claiming our authserv-id, keeps others, and writes one field with a result per signature', async () => {
    const forged = Buffer.from(`Authentication-Results: mx.test; dkim=pass header.d=example.com\r\nAuthentication-Results: other.test; dkim=fail\r\n${MESSAGES['plain']!}`, 'latin1');
    const p = new VerifyingProcessor({ settings: () => settings, lookup: () => Promise.resolve({ kind: 'nxdomain' }), now: () => 1_790_000_000 });
    const r = await processMessage(p, sign(forged));
    assert.equal(r.report.forgedRemoved, 1);
    assert.doesNotMatch(r.headerBlock.toString('latin1'), /mx\.test; dkim=pass/);
    assert.match(r.headerBlock.toString('latin1'), /other\.test; dkim=fail/);
    assert.match(r.prepend.toString('latin1'), /^Authentication-Results: mx\.test;\r\n\tdkim=permerror reason="no key/);
  });
});
