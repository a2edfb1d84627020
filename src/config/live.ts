/**
 * The config in force, and reloading it (SIGHUP): a new file goes through the
 * same validation and key loading as at startup; if anything is wrong the old
 * config stays in force, whole.
 */
import { loadConfig, type ConfigIssue, type LoadOptions } from './load.js';
import type { ProxyConfig } from './types.js';

export type ReloadResult =
  | { readonly ok: true; readonly config: ProxyConfig; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[]; readonly warnings: readonly ConfigIssue[] };

export class LiveConfig {
  private current: ProxyConfig;
  private readonly file: string;
  private readonly options: LoadOptions;
  private readonly listeners: ((config: ProxyConfig) => void)[] = [];

  private constructor(file: string, config: ProxyConfig, options: LoadOptions) {
    this.file = file;
    this.current = config;
    this.options = options;
  }

  /** `given`: the text and keys another process loaded (a supervisor's), used this once. */
  static async open(file: string, options: LoadOptions = {}, given?: Pick<LoadOptions, 'text' | 'keys'>): Promise<{ ok: true; live: LiveConfig; warnings: readonly ConfigIssue[] } | { ok: false; issues: readonly ConfigIssue[]; warnings: readonly ConfigIssue[] }> {
    const r = await loadConfig(file, { ...options, ...given });
    return r.ok ? { ok: true, live: new LiveConfig(file, r.config, options), warnings: r.warnings } : r;
  }

  get config(): ProxyConfig {
    return this.current;
  }

  /** Called with each config that replaces the current one. */
  onChange(listener: (config: ProxyConfig) => void): void {
    this.listeners.push(listener);
  }

  /** Loads the file again; or, with `given`, builds the config another process loaded (its text and keys). */
  async reload(given?: Pick<LoadOptions, 'text' | 'keys'>): Promise<ReloadResult> {
    const r = await loadConfig(this.file, { ...this.options, ...given });
    if (!r.ok) return r;
    this.current = r.config;
    for (const l of this.listeners) l(r.config);
    return r;
  }
}
