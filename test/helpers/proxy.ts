import { rmSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import type { ProxyConfig } from '../../src/config/types.js';
import { createKeyLookup } from '../../src/dns/resolver.js';
import { wireFor } from '../../src/dns/wire-cache.js';
import { createProxy, type ProxyKind, type ProxyServer } from '../../src/smtp/proxy.js';
import { NextHop, type Reply } from '../../src/relay/client.js';
import { makeConfigDir, type ConfigDir } from './config-dir.js';

export interface RunningProxy {
  readonly port: number;
  readonly config: ProxyConfig;
  readonly dir: ConfigDir;
  readonly logs: Record<string, unknown>[];
  readonly proxy: ProxyServer;
  stop(): Promise<void>;
}

/** Starts one proxy in-process on 127.0.0.1:0 with the given TOML (its keys made first). */
export async function startProxy(kind: ProxyKind, toml: string, keys: Parameters<typeof makeConfigDir>[1] = [], dnsServers: string[] = []): Promise<RunningProxy> {
  const dir = makeConfigDir(toml, keys);
  const r = await loadConfig(dir.file, { cwd: dir.dir, env: {} });
  if (!r.ok) throw new Error(r.issues.map((i) => `${i.key}: ${i.message}`).join('\n'));
  const logs: Record<string, unknown>[] = [];
  const sinkStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const log = pino({ level: 'info' }, sinkStream);
  const servers = dnsServers.length ? dnsServers : r.config.dns.servers;
  const proxy = createProxy(kind, { config: () => r.config, lookup: createKeyLookup({ servers, timeoutMs: r.config.dns.timeoutMs }), dns: wireFor({ ...r.config.dns, servers }), log });
  const at = await proxy.listen();
  return {
    port: at.port,
    config: r.config,
    dir,
    logs,
    proxy,
    async stop() {
      await proxy.close();
      rmSync(dir.dir, { recursive: true, force: true });
    },
  };
}

/** A client session with exact replies: our own next-hop client, pointed at the proxy. */
export async function client(port: number, timeoutMs = 10_000): Promise<NextHop> {
  return NextHop.open({ host: '127.0.0.1', port, name: 'client.test', timeoutMs });
}

export interface SendResult {
  readonly mail: Reply;
  readonly rcpt: Reply[];
  readonly data: Reply[] | undefined;
}

/** One transaction; DATA only if a recipient was accepted. */
export async function send(port: number, from: string, to: string[], message: Buffer | string, mailParams = ''): Promise<SendResult> {
  const c = await client(port);
  try {
    const mail = await c.command(`MAIL FROM:<${from}>${mailParams}`);
    const rcpt: Reply[] = [];
    for (const t of to) rcpt.push(await c.command(`RCPT TO:<${t}>`));
    let data: Reply[] | undefined;
    if (mail.code === 250 && rcpt.some((r) => r.code === 250)) {
      data = await c.data([typeof message === 'string' ? Buffer.from(message, 'latin1') : message], rcpt.filter((r) => r.code === 250).length);
    }
    return { mail, rcpt, data };
  } finally {
    await c.quit();
  }
}

export function writeToml(dir: ConfigDir, toml: string): void {
  writeFileSync(dir.file, toml);
}

/** The config of an `out` listener on a free loopback port relaying to relayPort, with `extra` keys of [out]. */
export const outListener = (relayPort: number, extra = ''): string => `[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${relayPort}"\n${extra}\n`;
