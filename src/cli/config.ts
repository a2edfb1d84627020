import { loadConfig, type ConfigIssue } from '../config/load.js';
import type { ProxyConfig } from '../config/types.js';
import { CliError, EXIT } from './output.js';

export const DEFAULT_CONFIG = 'config/dkim-proxy.toml';

export function formatIssue(file: string, issue: ConfigIssue, kind: 'error' | 'warning' = 'error'): string {
  const where = issue.line === undefined ? file : `${file}:${issue.line}`;
  return `${where}: ${kind === 'warning' ? 'warning: ' : ''}${issue.key ? `${issue.key}: ` : ''}${issue.message}`;
}

/** Loads the config; prints warnings; on errors prints them all and exits 78 (EX_CONFIG). */
export async function loadOrFail(file: string): Promise<ProxyConfig> {
  const result = await loadConfig(file);
  for (const w of result.warnings) process.stderr.write(`${formatIssue(file, w, 'warning')}\n`);
  if (!result.ok) {
    const sorted = [...result.issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    const lines = sorted.map((i) => formatIssue(file, i)).join('\n');
    throw new CliError(`${lines}\n${file}: ${result.issues.length} error${result.issues.length === 1 ? '' : 's'}`, EXIT.config);
  }
  return result.config;
}
