import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatKeyRecord, type KeyKind } from '../../src/dkim/index.js';
import { testKey } from './test-keys.js';

export interface ConfigDir {
  readonly dir: string;
  readonly file: string;
  /** TXT records for every key made, by DNS name. */
  readonly records: Map<string, string[]>;
}

// Removed when the test file's process exits, whichever test made them and
// however it ended: they hold (test) private keys and would pile up in /tmp.
const made: string[] = [];
process.once('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A temp directory with a config file and a key of its own (testKey) at keys/<d>/<s>.key for each one asked for. */
export function makeConfigDir(toml: string, keys: readonly { domain: string; selector: string; kind?: KeyKind }[] = []): ConfigDir {
  const dir = mkdtempSync(join(tmpdir(), 'dkim-proxy-config-'));
  made.push(dir);
  const records = new Map<string, string[]>();
  for (const k of keys) {
    const { pem, key } = testKey(k.kind ?? 'rsa-2048');
    mkdirSync(join(dir, 'keys', k.domain), { recursive: true });
    writeFileSync(join(dir, 'keys', k.domain, `${k.selector}.key`), pem, { mode: 0o600 });
    records.set(`${k.selector}._domainkey.${k.domain}`, [formatKeyRecord(key)]);
  }
  const file = join(dir, 'dkim-proxy.toml');
  writeFileSync(file, toml);
  return { dir, file, records };
}
