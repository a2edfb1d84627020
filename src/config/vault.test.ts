import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createPublicKey } from 'node:crypto';
import { formatKeyRecord, parseHeaderBlock, verifyMessage } from '../dkim/index.js';
import { cli } from '../../test/helpers/cli.js';
import { MessageSealer } from '../arc/seal.js';
import { verifyArc } from '../arc/verify.js';
import { signMessage } from '../dkim/sign.js';
import { loadConfig } from './load.js';
import { makeConfigDir } from '../../test/helpers/config-dir.js';
import { testKey } from '../../test/helpers/test-keys.js';

const TOKEN = 's.test-token';
const key = testKey('rsa-2048');
let server: Server;
let addr: string;
const requests: string[] = [];
const written = new Map<string, string>();

before(async () => {
  // The KV v2 read API: GET /v1/<mount>/data/<path>, token in X-Vault-Token.
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.setHeader('content-type', 'application/json');
    if (req.headers['x-vault-token'] !== TOKEN) {
      res.statusCode = 403;
      res.end('{"errors":["permission denied"]}');
    } else if (req.method === 'POST' && req.url?.startsWith('/v1/secret/data/dkim/example.com/') && !req.url.endsWith('/readonly')) {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        written.set(req.url!, (JSON.parse(body) as { data: { key: string } }).data.key);
        res.end('{"data":{"version":1}}');
      });
      return;
    } else if (req.method === 'POST') {
      res.statusCode = 403;
      res.end('{"errors":["permission denied"]}');
    } else if (req.url === '/v1/secret/data/dkim/example.com/s1' || req.url === '/v1/secret/data/dkim/lists.example.org/arc1') {
      res.end(JSON.stringify({ data: { data: { key: key.pem }, metadata: { version: 3 } } }));
    } else {
      res.statusCode = 404;
      res.end('{"errors":[]}');
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const a = server.address();
  assert.ok(a !== null && typeof a === 'object');
  addr = `http://127.0.0.1:${a.port}`;
});

after(() => server?.close());

async function load(toml: string, env: Record<string, string>) {
  const d = makeConfigDir(toml);
  try {
    return await loadConfig(d.file, { cwd: d.dir, env });
  } finally {
    rmSync(d.dir, { recursive: true, force: true });
  }
}

describe('keys from HashiCorp Vault (KV v2)', () => {
  it('rotate new writes the next key as a new secret where the token may, and says what to write where it may not', async () => {
    const toml = (prefix: string) => `[signing]\nvault_addr = "${addr}"\nvault_mount = "secret"\nvault_path_prefix = "${prefix}"\n[domain."example.com"]\nselector = "s1"\n`;
    const d = makeConfigDir(toml('dkim/'));
    try {
      const r = await cli(['rotate', 'new', '--config', d.file, '--domain', 'example.com', '--selector', 'next'], undefined, d.dir, { VAULT_TOKEN: TOKEN });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /wrote the key to vault:secret\/dkim\/example\.com\/next/);
      const pem = written.get('/v1/secret/data/dkim/example.com/next');
      assert.ok(pem?.includes('PRIVATE KEY'));
      const record = r.stdout.trim().match(/"([^"]*)"/g)!.map((x) => x.slice(1, -1)).join('');
      assert.equal(record, formatKeyRecord(createPublicKey(pem!)));

      const refused = await cli(['rotate', 'new', '--config', d.file, '--domain', 'example.com', '--selector', 'readonly'], undefined, d.dir, { VAULT_TOKEN: TOKEN });
      assert.equal(refused.code, 0, refused.stderr);
      assert.match(refused.stderr, /Vault refused the write \(403\)/);
      assert.match(refused.stderr, /vault kv put -mount=secret dkim\/example\.com\/readonly key=@.*readonly\.example\.com\.key/);
      assert.equal(statSync(join(d.dir, 'readonly.example.com.key')).mode & 0o777, 0o600);
    } finally {
      rmSync(d.dir, { recursive: true, force: true });
    }
  });


  it('the [arc] key comes from Vault like a signer\'s, and it seals', async () => {
    const r = await load(
      `[in]\nlisten = "127.0.0.1:10025"\nrelay = "127.0.0.1:10026"\nauthserv_id = "mx.lists.example.org"\narc_seal = true\n[signing]\nvault_addr = "${addr}"\nvault_mount = "secret"\nvault_path_prefix = "dkim/"\n[arc]\ndomain = "lists.example.org"\nselector = "arc1"\n`,
      { VAULT_TOKEN: TOKEN },
    );
    assert.ok(r.ok, r.ok ? '' : r.issues.map((i) => i.message).join('\n'));
    assert.equal(r.config.arc!.keySource, 'vault:secret/dkim/lists.example.org/arc1');
    const message = Buffer.from('Authentication-Results: mx.lists.example.org; dkim=pass\r\nFrom: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n');
    const sealer = new MessageSealer(r.config.arc!.sealer);
    sealer.update(Buffer.from('body\r\n'));
    const sealed = sealer.seal(parseHeaderBlock(message.toString('latin1', 0, message.indexOf('\r\n\r\n') + 2)), 1000);
    assert.ok(sealed.ok);
    const arc = await verifyArc(Buffer.concat([Buffer.from(sealed.fields.join(''), 'latin1'), message]), async () => ({ kind: 'found', records: [formatKeyRecord(key.key)] }), 1000);
    assert.equal(arc.result, 'pass');
  });


  it('loads the key for d= and s= from <mount>/data/<prefix><d>/<s>, and it signs', async () => {
    const r = await load(`[signing]\nvault_addr = "${addr}"\nvault_mount = "secret"\nvault_path_prefix = "dkim/"\n[domain."example.com"]\nselector = "s1"\n`, { VAULT_TOKEN: TOKEN });
    assert.ok(r.ok, r.ok ? '' : r.issues.map((i) => i.message).join('\n'));
    assert.ok(requests.includes('GET /v1/secret/data/dkim/example.com/s1'));
    const signer = r.config.signing.domains.get('example.com')!.signer;
    assert.equal(signer.keySource, 'vault:secret/dkim/example.com/s1');
    const message = Buffer.from('From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n');
    const signed = Buffer.concat([Buffer.from(signMessage(message, [signer.prepared], 1000).join(''), 'latin1'), message]);
    const outcomes = await verifyMessage(signed, async () => ({ kind: 'found', records: [formatKeyRecord(key.key)] }), 1000);
    assert.deepEqual(outcomes.map((o) => o.result), ['pass']);
  });

  it('names the secret and the reason when Vault says no', async () => {
    const toml = (selector: string) => `[signing]\nvault_addr = "${addr}"\nvault_mount = "secret"\nvault_path_prefix = "dkim/"\n[domain."example.com"]\nselector = "${selector}"\n`;
    const denied = await load(toml('s1'), { VAULT_TOKEN: 'wrong' });
    assert.ok(!denied.ok);
    assert.match(denied.issues[0]!.message, /vault:secret\/dkim\/example\.com\/s1: Vault refused the token \(403\)/);
    assert.equal(denied.issues[0]!.key, 'domain."example.com".selector');
    const missing = await load(toml('s2'), { VAULT_TOKEN: TOKEN });
    assert.ok(!missing.ok);
    assert.match(missing.issues[0]!.message, /vault:secret\/dkim\/example\.com\/s2: no such secret/);
  });

  it('says when Vault cannot be reached or no token is given', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as { port: number }).port;
    closed.close();
    await once(closed, 'close');
    const down = await load(`[signing]\nvault_addr = "http://127.0.0.1:${port}"\nvault_mount = "secret"\n[domain."example.com"]\nselector = "s1"\n`, { VAULT_TOKEN: TOKEN });
    assert.ok(!down.ok);
    assert.match(down.issues[0]!.message, /cannot reach Vault at http:\/\/127\.0\.0\.1:\d+/);
    const noToken = await load(`[signing]\nvault_addr = "${addr}"\nvault_mount = "secret"\n[domain."example.com"]\nselector = "s1"\n`, {});
    assert.ok(!noToken.ok);
    assert.equal(noToken.issues[0]!.key, 'signing.vault_token_file');
  });
});
