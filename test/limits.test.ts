/**
 * Exact replies and limits that hold when clients misbehave, over real
 * sockets on loopback: the next hop's enhanced codes reach the client
 * unchanged, one address cannot take every connection, a client that
 * trickles bytes meets a deadline, an unwritable spool and a next hop that
 * never answers the final dot give the client a 4xx and relay nothing.
 * The deadlines of a well-behaved session and of DATA are in deadlines.test.ts
 * (a file of their own, so that their waits overlap these).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../src/config/load.js';
import type { ProxyConfig } from '../src/config/types.js';
import { createProxy } from '../src/smtp/proxy.js';
import { makeConfigDir } from './helpers/config-dir.js';
import { eventually } from './helpers/eventually.js';
import { MESSAGES } from './helpers/messages.js';
import { client, outListener, send, startProxy } from './helpers/proxy.js';
import { rawClient, trickle, type RawClient } from './helpers/raw-client.js';
import { startRawHop } from './helpers/raw-hop.js';
import { startScriptedHop, startSink, type Sink } from './helpers/sink.js';

const MESSAGE = MESSAGES['plain']!;
let sink: Sink;

before(async () => {
  sink = await startSink();
});
after(async () => {
  await sink.stop();
});

describe('exact replies', () => {
  it('passes the next hop\'s enhanced codes to the client unchanged, at RCPT and at the end of DATA', async () => {
    const hop = await startScriptedHop(['PIPELINING', '8BITMIME', 'ENHANCEDSTATUSCODES'], (line) => {
      if (line.startsWith('RCPT TO:<NOBODY@')) return '550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown';
      if (line.startsWith('RCPT TO:<FULL@')) return '452 4.2.2 <full@example.net>: Mailbox full';
      if (line.startsWith('RCPT TO:<POLICY@')) return '550 5.7.26 Unauthenticated email is not accepted';
      return undefined;
    });
    const p = await startProxy('out', outListener(hop.port));
    try {
      const r = await send(p.port, 'alice@example.com', ['nobody@example.net', 'full@example.net', 'policy@example.net', 'bob@example.net'], MESSAGE);
      assert.deepEqual(
        r.rcpt.map((x) => [x.code, x.enhanced]),
        [
          [550, '5.1.1'],
          [452, '4.2.2'],
          [550, '5.7.26'],
          [250, '2.1.5'],
        ],
      );
      assert.match(r.rcpt[1]!.lines.join(' '), /Mailbox full/);
      assert.equal(r.data![0]!.code, 250);
      // The next hop's own "2.0.0 Ok: queued", not a code of smtp-server's choosing.
      assert.equal(r.data![0]!.enhanced, '2.0.0');
    } finally {
      await p.stop();
      await hop.stop();
    }
  });

  it('passes a next hop\'s 552 5.3.4 at the end of DATA through as it was sent', async () => {
    const hop = await startRawHop('refuser', ['ENHANCEDSTATUSCODES'], () => {
      let seen = Buffer.alloc(0);
      return (socket, chunk) => {
        seen = Buffer.concat([seen, chunk]);
        const end = seen.indexOf('\r\n.\r\n');
        if (end === -1) return undefined;
        socket.write('552 5.3.4 Message size exceeds fixed limit\r\n');
        return seen.subarray(end + 5);
      };
    });
    const p = await startProxy('out', outListener(hop.port));
    try {
      const r = await send(p.port, 'alice@example.com', ['bob@example.net'], MESSAGE);
      assert.equal(r.data![0]!.code, 552);
      assert.equal(r.data![0]!.enhanced, '5.3.4');
      assert.match(r.data![0]!.lines.join(' '), /^Message size exceeds fixed limit$/);
    } finally {
      await p.stop();
      await hop.stop();
    }
  });

  it('refuses with the right codes of its own: sizes 5.3.4, not 5.2.2 "mailbox full"; a client not allowed 5.7.1', async () => {
    const p = await startProxy('out', outListener(sink.port, 'max_message_bytes = 2048\nmax_header_bytes = 1024'));
    const closed = await startProxy('out', outListener(sink.port, 'allow_clients = ["192.0.2.0/24"]'));
    try {
      const big = await send(p.port, 'alice@example.com', ['bob@example.net'], MESSAGE + 'x'.repeat(4096) + '\r\n');
      assert.deepEqual([big.data![0]!.code, big.data![0]!.enhanced], [552, '5.3.4']);
      const header = await send(p.port, 'alice@example.com', ['bob@example.net'], `X-Long: ${'y'.repeat(1500)}\r\n${MESSAGE}`);
      assert.deepEqual([header.data![0]!.code, header.data![0]!.enhanced], [552, '5.3.4']);
      const c = await rawClient(closed.port);
      const greeting = await c.reply();
      assert.match(greeting[0]!, /^554 5\.7\.1 Access denied/);
    } finally {
      await p.stop();
      await closed.stop();
    }
  });

  it('advertises as SIZE the limit it enforces, also after a reload', async () => {
    const dir = makeConfigDir(outListener(sink.port, 'max_message_bytes = "1M"'));
    const second = makeConfigDir(outListener(sink.port, 'max_message_bytes = "2M"'));
    const load = async (file: string, cwd: string): Promise<ProxyConfig> => {
      const r = await loadConfig(file, { cwd, env: {} });
      if (!r.ok) throw new Error(r.issues.map((i) => i.message).join('\n'));
      return r.config;
    };
    let config = await load(dir.file, dir.dir);
    const proxy = createProxy('out', { config: () => config, lookup: () => Promise.resolve({ kind: 'nxdomain' }), log: pino({ level: 'silent' }) });
    const { port } = await proxy.listen();
    try {
      const first = await client(port);
      assert.equal(first.extensions.get('SIZE'), String(1024 * 1024));
      first.close();
      config = await load(second.file, second.dir);
      const after = await client(port);
      assert.equal(after.extensions.get('SIZE'), String(2 * 1024 * 1024));
      after.close();
    } finally {
      await proxy.close();
      rmSync(dir.dir, { recursive: true, force: true });
      rmSync(second.dir, { recursive: true, force: true });
    }
  });
});


describe('limits that hold when clients misbehave', () => {
  it('slowloris: 300 trickling connections from one address cannot keep another client waiting, and each meets its deadline', async () => {
    const p = await startProxy('out', outListener(sink.port, 'allow_clients = ["127.0.0.0/8"]\nmax_connections = 100\nmax_connections_per_client = 20\ncommand_timeout = 2'));
    const slow: RawClient[] = [];
    try {
      for (let k = 0; k < 300; k++) slow.push(await rawClient(p.port, '127.0.0.2'));
      const first = await Promise.all(slow.map((c) => c.reply()));
      const admitted = slow.filter((_, k) => first[k]![0]!.startsWith('220 '));
      const refused = slow.filter((_, k) => first[k]![0]!.startsWith('421 4.7.0 '));
      assert.equal(admitted.length, 20, 'max_connections_per_client admits 20');
      assert.equal(refused.length, 280, 'the rest are told to come back later');
      assert.match(first.find((r) => r[0]!.startsWith('421'))![0]!, /Too many connections from 127\.0\.0\.2 \(the limit is 20\)/);
      await Promise.all(refused.map((c) => c.closed));
      assert.ok(p.proxy.server.connections.size <= 100, 'max_connections holds');

      // Each admitted connection sends a byte every 400 ms, never finishing its command...
      const trickling = admitted.map((c) => trickle(c, 'EHLO slow.example.test\r\n', 400));
      // ...while an ordinary client from another address is served at once (its own client gives up after a second).
      const ordinary = await client(p.port, 1000);
      assert.equal((await ordinary.command('MAIL FROM:<alice@example.com>')).code, 250);
      assert.equal((await ordinary.command('RCPT TO:<bob@example.net>')).code, 250);
      assert.equal((await ordinary.data([Buffer.from(MESSAGE, 'latin1')], 1))[0]!.code, 250);
      await ordinary.quit();

      // The deadline is per command, not reset by each byte: every trickler is closed with 421 4.4.2.
      await Promise.all(admitted.map((c) => c.closed));
      await Promise.all(trickling);
      for (const c of admitted) {
        assert.match(c.lines.at(-1)!, /^421 4\.4\.2 .*A command did not arrive within 2 s/);
        assert.deepEqual(c.malformed, []);
      }
      assert.ok(p.logs.some((l) => l['msg'] === 'client too slow: deadline passed, connection closed'));
    } finally {
      for (const c of slow) c.socket.destroy();
      await p.stop();
    }
  });

  it('an unwritable spool (its directory gone) gives 452 4.3.1, relays nothing and leaves nothing behind', async () => {
    const spool = mkdtempSync(join(tmpdir(), 'dkim-proxy-test-gone-'));
    const p = await startProxy('out', outListener(sink.port, `spool_dir = "${spool}"\nspool_threshold = 1024`));
    const before = sink.dataStarted;
    try {
      rmSync(spool, { recursive: true, force: true });
      const r = await send(p.port, 'alice@example.com', ['bob@example.net'], MESSAGE + 'z'.repeat(76).concat('\r\n').repeat(100));
      assert.deepEqual([r.data![0]!.code, r.data![0]!.enhanced], [452, '4.3.1']);
      assert.equal(sink.dataStarted, before, 'nothing relayed');
      assert.equal(readdirSync(tmpdir()).filter((f) => f.startsWith('dkim-proxy-spool-')).length, 0, 'no spool left in the system temp dir');
      // A message under the threshold needs no spool and still goes through.
      assert.equal((await send(p.port, 'alice@example.com', ['bob@example.net'], MESSAGE)).data![0]!.code, 250);
    } finally {
      await p.stop();
    }
  });

  it('a next hop that takes the whole message and never answers the final dot: relay_timeout gives the client 451', async () => {
    let received = 0;
    const silent = await startRawHop('silent', ['8BITMIME'], () => (_socket, chunk) => {
      received += chunk.length;
      return undefined;
    });
    const p = await startProxy('out', outListener(silent.port, 'relay_timeout = 1'));
    try {
      const r = await send(p.port, 'alice@example.com', ['bob@example.net'], MESSAGE);
      assert.equal(r.data![0]!.code, 451);
      assert.equal(r.data![0]!.enhanced, '4.4.2');
      assert.match(r.data![0]!.lines.join(' '), /did not answer within 1000 ms/);
      assert.ok(received >= MESSAGE.length, 'the next hop had the whole message');
      await eventually('the failure logged', () => p.logs.some((l) => l['msg'] === 'message not relayed'));
    } finally {
      await p.stop();
      await silent.stop();
    }
  });
});
