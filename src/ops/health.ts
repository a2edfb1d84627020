/**
 * Readiness: the configuration is loaded (always, once running: a refused
 * reload keeps the old one), every configured listener is accepting, and
 * every next hop accepts a TCP connection. A plain connect, not an SMTP
 * session: it costs the next hop one "lost connection after CONNECT" log line
 * per probe, and only when someone asks.
 */
import { connect } from 'node:net';
import type { HostPort, ProxyConfig } from '../config/types.js';

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Record<string, string>;
}

export function tcpReachable(to: HostPort, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: to.host, port: to.port });
    const done = (result: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done(`no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => done('ok'));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}

export async function readiness(config: ProxyConfig, listening: (kind: 'out' | 'in') => boolean, timeoutMs = 1000): Promise<Readiness> {
  const checks: Record<string, string> = { config: 'ok' };
  const probes: Promise<void>[] = [];
  for (const kind of ['out', 'in'] as const) {
    const l = config[kind];
    if (!l) continue;
    checks[`${kind} listener`] = listening(kind) ? 'ok' : 'not listening';
    const name = `${kind} next hop ${l.relay.host}:${l.relay.port}`;
    probes.push(tcpReachable(l.relay, timeoutMs).then((r) => void (checks[name] = r)));
  }
  await Promise.all(probes);
  return { ready: Object.values(checks).every((v) => v === 'ok'), checks };
}
