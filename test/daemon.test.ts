/**
 * The `dkim-proxy run` process itself: started from its config, SIGHUP
 * reloads (a bad config refused, a good one taken), SIGTERM drains a
 * transaction in flight and exits 0. LMTP on the listener side.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { NextHop, type Reply } from '../src/relay/client.js';
import { makeConfigDir } from './helpers/config-dir.js';
import { eventually } from './helpers/eventually.js';
import { startDaemon } from './helpers/daemon.js';
import { MESSAGES } from './helpers/messages.js';
import { send, startProxy } from './helpers/proxy.js';
import { startSink, type Sink } from './helpers/sink.js';
import { cli } from './helpers/cli.js';
import { rawClient } from './helpers/raw-client.js';
import { freeTcpPort } from './helpers/ports.js';
import { testKey } from './helpers/test-keys.js';

let sink: Sink;
before(async () => {
  sink = await startSink();
});
after(async () => sink?.stop());

const outToml = (selector: string, workers = 1): string => `workers = ${workers}\n[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\n\n[domain."example.com"]\nselector = "${selector}"\n`;

describe('dkim-proxy run', () => {
  it('reloads on SIGHUP (refusing a bad config) and drains on SIGTERM, exiting 0', async () => {
    const dir = makeConfigDir(outToml('s1'), [
      { domain: 'example.com', selector: 's1' },
      { domain: 'example.com', selector: 's2' },
    ]);
    const d = startDaemon(dir.file, dir.dir);
    try {
      const listening = await d.waitFor((l) => l['msg'] === 'listening');
      const port = Number(String(listening['listen']).split(':').pop());
      const first = await send(port, 'alice@example.com', ['bob@example.net'], MESSAGES['plain']!);
      assert.equal(first.data![0]!.code, 250);
      assert.match(sink.messages.at(-1)!.data.toString('latin1'), /; s=s1;/);

      writeFileSync(dir.file, outToml('s1') + 'bogus_key = 1\n');
      d.child.kill('SIGHUP');
      const refused = await d.waitFor((l) => l['msg'] === 'reload refused: the configuration in force is unchanged');
      assert.match(JSON.stringify(refused['errors']), /unknown key \\"bogus_key\\"/);
      await send(port, 'alice@example.com', ['bob@example.net'], MESSAGES['plain']!);
      assert.match(sink.messages.at(-1)!.data.toString('latin1'), /; s=s1;/, 'the old config stays in force');

      writeFileSync(dir.file, outToml('s2'));
      d.child.kill('SIGHUP');
      await d.waitFor((l) => l['msg'] === 'configuration and keys reloaded');
      await send(port, 'alice@example.com', ['bob@example.net'], MESSAGES['plain']!);
      assert.match(sink.messages.at(-1)!.data.toString('latin1'), /; s=s2;/, 'the new config and key are used');

      // A message whose DATA is under way when SIGTERM arrives still completes;
      // a session between commands gets 421 (so its client retries: nothing is lost).
      const idle = await NextHop.open({ host: '127.0.0.1', port, name: 'idle.test', timeoutMs: 10_000 });
      const c = await NextHop.open({ host: '127.0.0.1', port, name: 'client.test', timeoutMs: 10_000 });
      assert.equal((await c.command('MAIL FROM:<alice@example.com>')).code, 250);
      assert.equal((await c.command('RCPT TO:<bob@example.net>')).code, 250);
      const exited = once(d.child, 'exit');
      const text = Buffer.from(MESSAGES['plain']!, 'latin1');
      const delivered = sink.messages.length;
      const replies = await c.data(
        (async function* () {
          yield text.subarray(0, 100);
          d.child.kill('SIGTERM');
          await d.waitFor((l) => String(l['msg']).startsWith('stopping'));
          yield text.subarray(100);
        })(),
        1,
      );
      assert.equal(replies[0]!.code, 250, replies[0]!.lines.join(' '));
      assert.equal(sink.messages.length, delivered + 1);
      assert.equal((await idle.command('MAIL FROM:<late@example.com>')).code, 421);
      idle.close();
      await c.quit();
      const [code] = await exited;
      assert.equal(code, 0);
      await d.waitFor((l) => l['msg'] === 'stopped');
    } finally {
      d.child.kill('SIGKILL');
      rmSync(dir.dir, { recursive: true, force: true });
    }
  });

  for (const workers of [1, 2]) {
    it(`exits 75 with the cause when its port is taken (workers = ${workers}), rather than run listening nowhere`, async () => {
      const taken = createServer();
      taken.listen(0, '127.0.0.1');
      await once(taken, 'listening');
      const { port } = taken.address() as { port: number };
      const dir = makeConfigDir(outToml('s1', workers).replace('listen = "127.0.0.1:0"', `listen = "127.0.0.1:${port}"`), [{ domain: 'example.com', selector: 's1' }]);
      const d = startDaemon(dir.file, dir.dir);
      try {
        const timer = setTimeout(() => d.child.kill('SIGKILL'), 15_000);
        const [code, signal] = (await once(d.child, 'exit')) as [number | null, string | null];
        clearTimeout(timer);
        assert.equal(signal, null, 'it exited by itself, not killed after 15 s');
        assert.equal(code, 75);
        if (workers > 1) assert.ok(d.lines.some((l) => l['msg'] === 'a worker could not start: stopping'), 'the primary says why it stops');
        assert.match(JSON.stringify(d.lines), new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port} for \\[out\\]: EADDRINUSE`));
      } finally {
        d.child.kill('SIGKILL');
        taken.close();
      }
    });
  }

  it('refuses to start on a bad config with exit 78 and the errors', async () => {
    const dir = makeConfigDir('[out]\nlisten = "127.0.0.1:0"\nrelay = "nowhere"\n');
    try {
      const d = startDaemon(dir.file, dir.dir);
      const [code] = await once(d.child, 'exit');
      assert.equal(code, 78);
      assert.match(JSON.stringify(d.lines), /out\.relay: expected \\"host:port\\"/);
    } finally {
      rmSync(dir.dir, { recursive: true, force: true });
    }
  });
});

describe('dkim-proxy run with two workers', () => {
  it('shares the listener between workers, replaces one that dies, reloads all, and drains on SIGTERM', async () => {
    const dir = makeConfigDir(outToml('s1', 2), [
      { domain: 'example.com', selector: 's1' },
      { domain: 'example.com', selector: 's2' },
    ]);
    const d = startDaemon(dir.file, dir.dir);
    const listening = (): Record<string, unknown>[] => d.lines.filter((l) => l['msg'] === 'listening');
    const until = async (cond: () => boolean, what: string): Promise<void> => {
      await eventually(what, cond, { detail: () => `log:\n${d.lines.map((l) => JSON.stringify(l)).join('\n')}` });
    };
    try {
      await until(() => listening().length === 2, 'two workers listening');
      const pids = listening().map((l) => Number(l['pid']));
      assert.notEqual(pids[0], pids[1]);
      const port = Number(String(listening()[0]!['listen']).split(':').pop());
      assert.equal(Number(String(listening()[1]!['listen']).split(':').pop()), port, 'one shared port');

      for (let k = 0; k < 10; k++) assert.equal((await send(port, 'alice@example.com', ['bob@example.net'], MESSAGES['plain']!)).data![0]!.code, 250);
      const served = new Set(d.lines.filter((l) => l['msg'] === 'message relayed').map((l) => Number(l['pid'])));
      assert.equal(served.size, 2, 'both workers took connections');

      process.kill(pids[0]!, 'SIGKILL');
      await until(() => d.lines.some((l) => l['msg'] === 'worker died: starting a new one'), 'the death noticed');
      await until(() => listening().length === 3, 'a new worker listening');
      for (let k = 0; k < 4; k++) assert.equal((await send(port, 'alice@example.com', ['bob@example.net'], MESSAGES['plain']!)).data![0]!.code, 250);

      writeFileSync(dir.file, outToml('s2', 2));
      d.child.kill('SIGHUP');
      await until(() => d.lines.filter((l) => l['msg'] === 'configuration and keys reloaded').length === 2, 'both live workers reloaded');
      for (let k = 0; k < 4; k++) {
        await send(port, 'alice@example.com', ['bob@example.net'], MESSAGES['plain']!);
        assert.match(sink.messages.at(-1)!.data.toString('latin1'), /; s=s2;/);
      }

      const exited = once(d.child, 'exit');
      d.child.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 0);
      assert.ok(d.lines.some((l) => l['msg'] === 'stopped'));
      // Each worker drained and exited by itself (not killed by the primary's fallback).
      const stopped = d.lines.filter((l) => l['msg'] === 'worker stopped');
      assert.equal(stopped.length, 2);
      for (const l of stopped) assert.deepEqual([l['code'], l['signal']], [0, null]);
    } finally {
      d.child.kill('SIGKILL');
      rmSync(dir.dir, { recursive: true, force: true });
    }
  });
});

/** An LMTP client's transaction for two recipients, both accepted: the two replies to DATA. */
async function toBobAndCarol(c: NextHop): Promise<Reply[]> {
  assert.equal((await c.command('MAIL FROM:<alice@example.com>')).code, 250);
  assert.equal((await c.command('RCPT TO:<bob@example.net>')).code, 250);
  assert.equal((await c.command('RCPT TO:<carol@example.net>')).code, 250);
  return c.data([Buffer.from(MESSAGES['plain']!, 'latin1')], 2);
}

describe('LMTP listener', () => {
  it('gives one DATA reply per accepted recipient', async () => {
    const p = await startProxy('out', `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\nprotocol = "lmtp"\n`);
    const c = await NextHop.open({ host: '127.0.0.1', port: p.port, name: 'client.test', timeoutMs: 10_000, lmtp: true });
    try {
      const replies = await toBobAndCarol(c);
      assert.deepEqual(replies.map((r) => r.code), [250, 250]);
      sink.behaviour = { data: () => 452 };
      const refused = await toBobAndCarol(c);
      assert.deepEqual(refused.map((r) => r.code), [452, 452]);
    } finally {
      sink.behaviour = {};
      await c.quit();
      await p.stop();
    }
  });
});

describe('LMTP towards the next hop (relay_protocol)', () => {
  it('passes each recipient\'s own reply from an LMTP next hop to an LMTP client, as it was sent', async () => {
    const { SMTPServer } = await import('smtp-server');
    const delivered: string[] = [];
    const lmtpHop = new SMTPServer({
      lmtp: true,
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
      onData(stream, session, callback) {
        stream.resume();
        stream.on('end', () => {
          // Mixed results: carol's mailbox is over quota, bob's takes it.
          callback(
            null,
            session.envelope.rcptTo.map((r) => {
              if (r.address.startsWith('carol')) return Object.assign(new Error('5.2.2 <carol@example.net>: Mailbox full'), { responseCode: 552 });
              delivered.push(r.address);
              return `2.0.0 <${r.address}> Saved`;
            }),
          );
        });
      },
    });
    await new Promise<void>((resolve) => lmtpHop.listen(0, '127.0.0.1', () => resolve()));
    const hopPort = (lmtpHop.server.address() as { port: number }).port;
    const p = await startProxy('in', `[in]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${hopPort}"\nprotocol = "lmtp"\nrelay_protocol = "lmtp"\nauthserv_id = "mx.test"\n`);
    const c = await NextHop.open({ host: '127.0.0.1', port: p.port, name: 'client.test', timeoutMs: 10_000, lmtp: true });
    try {
      const replies = await toBobAndCarol(c);
      assert.deepEqual(replies.map((r) => [r.code, r.enhanced]), [[250, '2.0.0'], [552, '5.2.2']]);
      assert.match(replies[0]!.lines.join(' '), /<bob@example\.net> Saved/);
      assert.match(replies[1]!.lines.join(' '), /Mailbox full/);
      assert.deepEqual(delivered, ['bob@example.net']);
    } finally {
      await c.quit();
      await p.stop();
      await new Promise<void>((resolve) => lmtpHop.close(() => resolve()));
    }
  });

  it('check-config refuses an SMTP listener in front of an LMTP next hop, naming the key', async () => {
    const dir = makeConfigDir(`[out]\nlisten = "127.0.0.1:10027"\nrelay = "127.0.0.1:24"\nrelay_protocol = "lmtp"\n`);
    try {
      const r = await cli(['check-config', '--config', dir.file], undefined, dir.dir);
      assert.equal(r.code, 78);
      assert.match(r.stderr, /:4: out\.relay_protocol: an SMTP listener cannot pass on an LMTP next hop's per-recipient results truthfully/);
    } finally {
      rmSync(dir.dir, { recursive: true, force: true });
    }
  });
});

describe('keys are read once per load, not once per process', () => {
  it('with two workers, a start and a SIGHUP each read the key from Vault once (the supervisor hands it on)', async () => {
    const { createServer: createHttpServer } = await import('node:http');
    const pem = testKey('rsa-2048').pem;
    const reads: string[] = [];
    const vault = createHttpServer((req, res) => {
      reads.push(String(req.url));
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ data: { data: { key: pem } } }));
    });
    vault.listen(0, '127.0.0.1');
    await once(vault, 'listening');
    const vaultPort = (vault.address() as { port: number }).port;
    const toml = `workers = 2\n[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\n[signing]\nvault_addr = "http://127.0.0.1:${vaultPort}"\nvault_token_file = "token"\n[domain."example.com"]\nselector = "v1"\n`;
    const dir = makeConfigDir(toml);
    writeFileSync(`${dir.dir}/token`, 's.test\n', { mode: 0o600 });
    const d = startDaemon(dir.file, dir.dir);
    try {
      await eventually('two workers listening', () => d.lines.filter((l) => l['msg'] === 'listening').length === 2, { detail: () => JSON.stringify(d.lines) });
      assert.deepEqual(reads, ['/v1/secret/data/dkim/example.com/v1'], 'read once at start, by the supervisor');
      const port = Number(String(d.lines.find((l) => l['msg'] === 'listening')!['listen']).split(':').pop());
      assert.equal((await send(port, 'alice@example.com', ['bob@example.net'], MESSAGES['plain']!)).data![0]!.code, 250);
      assert.match(sink.messages.at(-1)!.data.toString('latin1'), /; s=v1;/);
      d.child.kill('SIGHUP');
      await eventually('both workers reloaded', () => d.lines.filter((l) => l['msg'] === 'configuration and keys reloaded').length === 2, { detail: () => JSON.stringify(d.lines) });
      assert.equal(reads.length, 2, 'and once for the reload, not three times');
      assert.equal(await d.stop(), 0);
    } finally {
      d.child.kill('SIGKILL');
      vault.close();
      rmSync(dir.dir, { recursive: true, force: true });
    }
  });
});

describe('a worker killed in mid-DATA', () => {
  it('drops the client\'s connection, never a 250, relays nothing; a replacement serves the retry', async () => {
    // A fixed port, as in production: with every worker gone the port is unbound until the replacements bind it again.
    const port = await freeTcpPort();
    const dir = makeConfigDir(outToml('s1', 2).replace('listen = "127.0.0.1:0"', `listen = "127.0.0.1:${port}"`), [{ domain: 'example.com', selector: 's1' }]);
    const d = startDaemon(dir.file, dir.dir);
    try {
      await eventually('two workers listening', () => d.lines.filter((l) => l['msg'] === 'listening').length === 2, { detail: () => JSON.stringify(d.lines) });
      const workers = d.lines.filter((l) => l['msg'] === 'listening').map((l) => Number(l['pid']));
      const delivered = sink.messages.length;
      const c = await rawClient(port);
      await c.reply();
      c.write('EHLO client.test\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n');
      for (const code of ['250', '250', '250', '354']) assert.equal((await c.reply())[0]!.slice(0, 3), code);
      c.write(MESSAGES['plain']!.slice(0, 120));
      // Whichever worker holds the connection: both go.
      for (const pid of workers) process.kill(pid, 'SIGKILL');
      await c.closed;
      // Nothing after the 354: no 250, no 4xx, the connection just went away.
      assert.equal(c.lines.at(-1)!.slice(0, 3), '354', `the last thing the client heard was 354: ${JSON.stringify(c.lines)}`);
      assert.equal(sink.messages.length, delivered, 'nothing relayed');
      await eventually('replacement workers listening', () => d.lines.filter((l) => l['msg'] === 'listening').length === 4, { detail: () => JSON.stringify(d.lines) });
      const retry = await send(port, 'alice@example.com', ['bob@example.net'], MESSAGES['plain']!);
      assert.equal(retry.data![0]!.code, 250);
      assert.equal(sink.messages.length, delivered + 1);
      assert.equal(await d.stop(), 0);
    } finally {
      d.child.kill('SIGKILL');
      rmSync(dir.dir, { recursive: true, force: true });
    }
  });
});
