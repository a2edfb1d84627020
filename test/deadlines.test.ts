/**
 * The deadlines of `command_timeout` and `data_timeout` over real sockets on
 * loopback: each command has its own, so a session that keeps to them stays
 * however long it lasts, and a message that trickles in past its own is
 * refused with 421 and relays nothing. (The slowloris case is in
 * limits.test.ts.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MESSAGES } from './helpers/messages.js';
import { outListener, startProxy } from './helpers/proxy.js';
import { rawClient, trickle } from './helpers/raw-client.js';
import { startSink } from './helpers/sink.js';

describe('deadlines per command and for DATA', () => {
  it('the deadline is per command: a client whose every command arrives in time stays, however long the session', async () => {
    const sink = await startSink();
    const p = await startProxy('out', outListener(sink.port, 'command_timeout = 1'));
    const c = await rawClient(p.port);
    try {
      await c.reply();
      // Four NOOPs 600 ms apart: 2.4 s in all, more than two deadlines, each command within one.
      for (let k = 0; k < 4; k++) {
        await new Promise((r) => setTimeout(r, 600));
        c.write('NOOP\r\n');
        assert.match((await c.reply())[0]!, /^250 /);
      }
      assert.equal(c.isClosed(), false);
      // Then silence: the deadline closes it.
      await c.closed;
      assert.match(c.lines.at(-1)!, /^421 4\.4\.2 .*A command did not arrive within 1 s/);
    } finally {
      c.socket.destroy();
      await p.stop();
      await sink.stop();
    }
  });

  it('a message that trickles in past data_timeout gets 421, and nothing is relayed', async () => {
    const sink = await startSink();
    const p = await startProxy('out', outListener(sink.port, 'data_timeout = 1\ncommand_timeout = 30'));
    const c = await rawClient(p.port);
    try {
      await c.reply();
      c.write('EHLO client.test\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n');
      for (const code of ['250', '250', '250', '354']) assert.equal((await c.reply())[0]!.slice(0, 3), code);
      await trickle(c, MESSAGES['plain']!, 200);
      assert.match(c.lines.at(-1)!, /^421 4\.4\.2 .*The message did not arrive within 1 s/);
      assert.equal(sink.dataStarted, 0, 'nothing relayed');
    } finally {
      c.socket.destroy();
      await p.stop();
      await sink.stop();
    }
  });
});
