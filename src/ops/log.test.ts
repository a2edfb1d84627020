import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, messageLogger } from './log.js';

function capture(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  return {
    stream: new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk.toString());
        cb();
      },
    }),
    text: () => chunks.join(''),
  };
}

describe('logger', () => {
  it('writes JSON lines, with key material redacted', () => {
    const c = capture();
    const log = createLogger('info', c.stream, 'json');
    log.info({ kind: 'out', signer: { key: 'PRIVATE', domain: 'example.com' }, token: 's3cret' }, 'message relayed');
    const line = JSON.parse(c.text().trim()) as Record<string, unknown>;
    assert.equal(line['msg'], 'message relayed');
    assert.deepEqual(line['signer'], { key: '[redacted]', domain: 'example.com' });
    assert.equal(line['token'], '[redacted]');
    assert.doesNotMatch(c.text(), /PRIVATE|s3cret/);
  });

  it('per-message lines keep the level and destination, and still redact top-level secret names', () => {
    const c = capture();
    const log = messageLogger(createLogger('warn', c.stream, 'json'));
    log.info({ kind: 'out' }, 'below the level');
    log.warn({ kind: 'out', key: 'PRIVATE', rcpt: ['bob@example.net'] }, 'message not relayed');
    const lines = c.text().trim().split('\n');
    assert.equal(lines.length, 1);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(line['key'], '[redacted]');
    assert.deepEqual(line['rcpt'], ['bob@example.net']);
    assert.doesNotMatch(c.text(), /PRIVATE/);
  });

  it('writes one readable line per entry when pretty, keeping the fields', () => {
    const c = capture();
    const log = createLogger('info', c.stream, 'pretty');
    log.warn({ kind: 'in', client: '192.0.2.1' }, 'client refused: not in allow_clients');
    log.debug('not at this level');
    const lines = c.text().trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: client refused: not in allow_clients \{"kind":"in","client":"192\.0\.2\.1"\}$/);
  });

  it('honours the level', () => {
    const c = capture();
    const log = createLogger('warn', c.stream, 'json');
    log.info('quiet');
    log.error('loud');
    assert.deepEqual(c.text().trim().split('\n').map((l) => (JSON.parse(l) as { msg: string }).msg), ['loud']);
  });
});
