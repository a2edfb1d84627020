import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatUsers, hashPassword, parseUsers, verifyPassword } from './users.js';

describe('auth users file', () => {
  it('scrypt hashes: the right password verifies, a wrong one and a broken hash do not; the text never holds the password', async () => {
    const hash = await hashPassword('correct horse battery');
    assert.match(hash, /^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    assert.ok(!hash.includes('correct horse'));
    assert.equal(await verifyPassword('correct horse battery', hash), true);
    assert.equal(await verifyPassword('correct horse batterY', hash), false);
    assert.equal(await verifyPassword('correct horse battery', 'plain:text'), false);
    assert.notEqual(await hashPassword('correct horse battery'), hash, 'salted');
  });

  it('parses and writes user:hash:domains lines; mistakes are named by line', async () => {
    const hash = await hashPassword('password-1');
    const text = formatUsers([{ name: 'alice', hash, domains: ['a.example', 'b.example'] }]);
    const r = parseUsers(text);
    assert.ok(r.ok);
    assert.deepEqual(r.users.get('alice')?.domains, ['a.example', 'b.example']);
    for (const [bad, message] of [
      [`alice:${hash}:a.example\nalice:${hash}:b.example`, /listed twice/],
      ['bob:secret:a.example', /not an scrypt hash/],
      [`bob:${hash}:`, /no domain/],
      [`b b:${hash}:a.example`, /not a user name/],
      ['bob', /user:hash:domains/],
    ] as const) {
      const p = parseUsers(`# comment\n${bad}\n`);
      assert.ok(!p.ok, bad);
      assert.match(p.message, message);
      assert.equal(p.line, bad.includes('\n') ? 3 : 2);
    }
  });
});
