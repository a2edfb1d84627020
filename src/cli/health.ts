import { parseArgs } from 'node:util';
import { DEFAULT_CONFIG } from './config.js';
import { endpointUrl, fetchEndpoint } from './endpoint.js';
import { EXIT } from './output.js';
import { paint } from './style.js';

export const HEALTH_HELP = `Usage: dkim-proxy health [--config FILE | --url URL] [--ready]

Asks the running proxy's /healthz (is it up?) or, with --ready, /readyz (is
every listener up and every next hop reachable?), prints the answer, and exits
0 if healthy, 1 if not: for container HEALTHCHECKs and monitoring scripts.

Options:
  -c, --config FILE   the configuration whose [metrics] listen to ask (default: ${DEFAULT_CONFIG})
      --url URL       ask this endpoint instead (e.g. http://127.0.0.1:9090/healthz)
      --ready         ask /readyz instead of /healthz
`;

export async function healthCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c', default: DEFAULT_CONFIG },
      url: { type: 'string' },
      ready: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HEALTH_HELP);
    return EXIT.ok;
  }
  const url = await endpointUrl(values.config, values.url, values.ready ? '/readyz' : '/healthz');
  const p = paint();
  let answer: { status: number; text: string };
  try {
    answer = await fetchEndpoint(url);
  } catch (err) {
    process.stdout.write(`${p.bad('down')}  ${(err as Error).message}\n`);
    return EXIT.notVerified;
  }
  const ok = answer.status === 200;
  let detail = answer.text.trim();
  if (values.ready) {
    try {
      const body = JSON.parse(answer.text) as { checks?: Record<string, string> };
      detail = Object.entries(body.checks ?? {})
        .map(([k, v]) => `${k}: ${v === 'ok' ? p.good(v) : p.bad(v)}`)
        .join(', ');
    } catch {
      // not our JSON: show it as it came
    }
  }
  process.stdout.write(`${ok ? p.good(values.ready ? 'ready' : 'ok') : p.bad(`HTTP ${answer.status}`)}  ${url}${detail && detail !== 'ok' ? `  ${detail}` : ''}\n`);
  return ok ? EXIT.ok : EXIT.notVerified;
}
