/** Finding and reading the running proxy's operations endpoint ([metrics] listen). */
import { loadOrFail } from './config.js';
import { CliError, EXIT, usageError } from './output.js';

/** `path` on the endpoint that `url` names, or that the config's [metrics] listen gives. */
export async function endpointUrl(configFile: string, url: string | undefined, path: string): Promise<string> {
  if (url !== undefined) {
    if (!/^https?:\/\//.test(url)) throw usageError(`--url: expected http://HOST:PORT${path}, got "${url}"`);
    return url;
  }
  const config = await loadOrFail(configFile);
  const at = config.metrics.listen;
  if (!at) throw new CliError(`${configFile} has no [metrics] listen: nothing to read (set it and restart dkim-proxy, or pass --url)`, EXIT.config);
  if (at.port === 0) throw usageError(`${configFile}: [metrics] listen has port 0 (the port is chosen at start; the log line "metrics and health endpoint listening" names it): pass --url`);
  // A wildcard listener is reached on loopback.
  const host = at.host === '0.0.0.0' ? '127.0.0.1' : at.host === '::' ? '::1' : at.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${at.port}${path}`;
}

/** GET `url`; unreachable is EX_TEMPFAIL with a hint. */
export async function fetchEndpoint(url: string): Promise<{ status: number; text: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err instanceof Error ? err.message : String(err));
    throw new CliError(`cannot read ${url}: ${cause} (is dkim-proxy running, with [metrics] listen set?)`, EXIT.tempFail);
  }
}
