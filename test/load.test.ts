/**
 * Load, bounded: 2,000 messages over 32 connections through `out` into a next
 * hop that refuses or drops about 10% of them. Every message the client saw
 * accepted arrives exactly once with a valid signature; none it saw refused
 * arrives; the counts add up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import { verifyMessage } from '../src/dkim/index.js';
import { NextHop } from '../src/relay/client.js';
import { zoneLookup } from './helpers/fixtures.js';
import { startFaultyHop, type Fate, type FaultyHop } from './helpers/faulty-hop.js';
import { startProxy, type RunningProxy } from './helpers/proxy.js';
import { makeConfigDir } from './helpers/config-dir.js';

const MESSAGES = 2000;
const CONNECTIONS = 32;

let hop: FaultyHop;
let proxy: RunningProxy;
let records: Map<string, string[]>;

/** A fixed, seeded fate per message number: about 5% refused and 5% dropped. */
function fateOf(seq: number): Fate {
  const h = createHash('sha256').update(`fate-${seq}`).digest()[0]!;
  return h < 13 ? 'refuse' : h < 26 ? 'drop' : 'accept';
}

const seqOf = (m: Buffer): number => Number(/^X-Seq: (\d+)\r$/m.exec(m.toString('latin1'))?.[1] ?? -1);

before(async () => {
  hop = await startFaultyHop((m) => fateOf(seqOf(m)));
  const keys = makeConfigDir('', [{ domain: 'example.com', selector: 'load' }]);
  records = keys.records;
  proxy = await startProxy(
    'out',
    `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${hop.port}"\nrelay_timeout = 10\n\n[domain."example.com"]\nselector = "load"\nkey_file = "${keys.dir}/keys/example.com/load.key"\n`,
  );
});

after(async () => {
  await proxy?.stop();
  await hop?.stop();
});

function message(seq: number): Buffer {
  return Buffer.from(
    `From: Load <load@example.com>\r\nTo: sink@example.net\r\nSubject: load ${seq}\r\nMessage-ID: <load-${seq}@example.com>\r\nX-Seq: ${seq}\r\n\r\n` +
      `Message number ${seq}.\r\n`.repeat(1 + (seq % 40)),
    'latin1',
  );
}

describe('load through out', () => {
  it(`${MESSAGES} messages over ${CONNECTIONS} connections, 10% refused or dropped by the next hop: exactly-once for every accepted one`, { timeout: 120_000 }, async () => {
    const accepted = new Set<number>();
    const refused = new Set<number>();
    let next = 0;
    const started = Date.now();

    async function worker(): Promise<void> {
      let c: NextHop | undefined;
      while (next < MESSAGES) {
        const seq = next++;
        try {
          c ??= await NextHop.open({ host: '127.0.0.1', port: proxy.port, name: 'load.test', timeoutMs: 20_000 });
          const mail = await c.command('MAIL FROM:<load@example.com>');
          const rcpt = mail.code === 250 ? await c.command('RCPT TO:<sink@example.net>') : mail;
          const reply = rcpt.code === 250 ? (await c.data([message(seq)], 1))[0]! : rcpt;
          if (reply.code === 250) accepted.add(seq);
          else {
            refused.add(seq);
            if (reply.code === 421) {
              c.close();
              c = undefined;
            } else if (mail.code === 250 && reply !== mail) {
              await c.command('RSET');
            }
          }
        } catch {
          // The connection to the proxy failed: the client saw no 250, so it counts as refused.
          refused.add(seq);
          c?.close();
          c = undefined;
        }
      }
      await c?.quit();
    }
    await Promise.all(Array.from({ length: CONNECTIONS }, worker));
    const seconds = (Date.now() - started) / 1000;

    assert.equal(accepted.size + refused.size, MESSAGES, 'every message has an outcome');
    const delivered = hop.delivered.map(seqOf);
    assert.equal(new Set(delivered).size, delivered.length, 'nothing delivered twice');
    assert.deepEqual([...delivered].sort((a, b) => a - b), [...accepted].sort((a, b) => a - b), 'delivered = what the client saw accepted');
    for (const seq of refused) assert.notEqual(fateOf(seq), 'accept', `message ${seq} was refused although the next hop would take it`);
    const expectedRefused = Array.from({ length: MESSAGES }, (_, k) => k).filter((k) => fateOf(k) !== 'accept').length;
    assert.equal(refused.size, expectedRefused);
    assert.ok(expectedRefused > 100 && expectedRefused < 300, `about 10% misbehave (${expectedRefused})`);

    const lookup = zoneLookup(records);
    const now = Math.floor(Date.now() / 1000);
    for (const m of hop.delivered) {
      const outcomes = await verifyMessage(m, lookup, now);
      assert.deepEqual(outcomes.map((o) => o.result), ['pass'], `message ${seqOf(m)}`);
    }
    // For the record (not a timed assertion): how fast this ran.
    console.log(`# load: ${MESSAGES} messages in ${seconds.toFixed(1)} s (${Math.round(MESSAGES / seconds)} msg/s), ${accepted.size} accepted, ${refused.size} refused`);
  });
});
