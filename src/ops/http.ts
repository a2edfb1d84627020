/**
 * The operations endpoint on `[metrics] listen`: GET /metrics (Prometheus
 * text), /healthz (the process is up and serving this), /readyz (ready for
 * mail: 200, or 503 with the failing checks).
 */
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { HostPort } from '../config/types.js';
import type { Readiness } from './health.js';

export interface OpsSource {
  metrics(): Promise<string>;
  readiness(): Promise<Readiness>;
}

export interface OpsServer {
  readonly address: HostPort;
  close(): Promise<void>;
}

const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8';

export async function startOpsServer(listen: HostPort, source: OpsSource, log: Logger): Promise<OpsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      reply(405, 'text/plain', 'method not allowed\n');
      return;
    }
    const fail = (err: unknown): void => {
      log.error({ err, path }, 'metrics endpoint failed');
      reply(500, 'text/plain', `error: ${err instanceof Error ? err.message : String(err)}\n`);
    };
    switch (path) {
      case '/metrics':
        source.metrics().then((text) => reply(200, PROMETHEUS_TEXT, text), fail);
        return;
      case '/healthz':
        reply(200, 'text/plain', 'ok\n');
        return;
      case '/readyz':
        source.readiness().then((r) => reply(r.ready ? 200 : 503, 'application/json', `${JSON.stringify(r)}\n`), fail);
        return;
      default:
        reply(404, 'text/plain', 'not found: try /metrics, /healthz or /readyz\n');
    }
  });
  // Scrapers keep connections open; they must not hold up a shutdown.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'metrics endpoint error'));
  const a = server.address();
  const address = typeof a === 'object' && a ? { host: a.address, port: a.port } : listen;
  return {
    address,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
