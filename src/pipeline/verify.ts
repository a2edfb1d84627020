/**
 * `in`'s processor: Authentication-Results that claim our authserv-id are
 * removed (forged upstream, RFC 8601 §5), each check runs over the message,
 * and one Authentication-Results field with every check's results goes in
 * front. `dkim-proxy verify` runs this very processor.
 *
 * A check is a step: started with the header block (so its DNS lookups can
 * start while the body streams), fed the body, finished with its typed
 * result and the method results it writes. A new check (SPF, DMARC, ARC) is
 * one more step and one more field of `InboundResults`.
 */
import {
  dkimResinfos,
  formatAuthenticationResultsField,
  MessageVerifier,
  viewOutcome,
  skippedNote,
  type DkimOutcome,
  type HeaderField,
  type KeyAnswer,
} from '../dkim/index.js';
import type { KeyLookup } from '../dns/resolver.js';
import { NO_METRICS, type ProxyMetrics } from '../ops/metrics.js';
import { authorDomain } from '../policy/author.js';
import type { Envelope, MessageHead, MessageProcessor, MessageRun } from './message.js';

export interface VerifySettings {
  readonly authservId: string;
  readonly maxSignatures: number;
  readonly allowSha1: boolean;
  readonly allowShortKeys: boolean;
}

export interface DkimVerification {
  /** One per checked signature, top to bottom. */
  readonly outcomes: readonly DkimOutcome[];
  /** Signatures past `max_signatures`: not checked, not listed. */
  readonly skipped: number;
}

export interface InboundResults {
  readonly dkim: DkimVerification;
}

export interface InboundReport extends InboundResults {
  /** Forged Authentication-Results fields removed. */
  readonly forgedRemoved: number;
  /** The field prepended (with CRLF). */
  readonly authenticationResults: string;
}

export interface VerifyDeps {
  readonly settings: () => VerifySettings;
  readonly lookup: KeyLookup;
  /** Seconds since the epoch. */
  readonly now: () => number;
  readonly metrics?: ProxyMetrics;
}

/** The message as the checks see it: forged results already gone. */
export interface InboundMessage {
  readonly fields: readonly HeaderField[];
  readonly envelope: Envelope;
  readonly authorDomain: string | null;
}

interface CheckRun<T> {
  update(chunk: Uint8Array): void;
  finish(): Promise<T>;
}

/** DKIM (RFC 6376): every signature up to the limit, author-aligned ones first. */
function dkimCheck(message: InboundMessage, settings: VerifySettings, deps: VerifyDeps): CheckRun<DkimVerification> {
  const verifier = new MessageVerifier(message.fields, {
    maxSignatures: settings.maxSignatures,
    allowSha1: settings.allowSha1,
    allowShortKeys: settings.allowShortKeys,
    authorDomain: message.authorDomain ?? undefined,
  });
  // Started now, answered while the body streams. A message refused before
  // finish() never awaits them: a lookup that threw must not become an
  // unhandled rejection (which ends the process), so it is caught here too.
  const keys = Promise.all(verifier.keyQueries().map(async (n) => [n, await deps.lookup(n)] as [string, KeyAnswer]));
  keys.catch(() => undefined);
  return {
    update: (chunk) => verifier.update(chunk),
    finish: async () => ({ outcomes: verifier.finish(new Map(await keys), deps.now()), skipped: verifier.skipped }),
  };
}

/** Fields other than Authentication-Results of our authserv-id, and how many were removed. */
export function withoutForgedResults(fields: readonly HeaderField[], authservId: string): { fields: readonly HeaderField[]; removed: number } {
  const ours = authservId.toLowerCase();
  const forged = (f: HeaderField): boolean => f.key === 'authentication-results' && resultsAuthservId(f) === ours;
  // Most messages carry none: no copy then.
  if (!fields.some(forged)) return { fields, removed: 0 };
  const keep = fields.filter((f) => !forged(f));
  return { fields: keep, removed: fields.length - keep.length };
}

/** The authserv-id an Authentication-Results field names, comments skipped, lower case. */
export function resultsAuthservId(field: HeaderField): string | undefined {
  const value = field.raw.slice(field.raw.indexOf(':') + 1).replace(/\([^)]*\)/g, ' ');
  return /^\s*([^\s;]+)/.exec(value)?.[1]?.toLowerCase();
}

export class VerifyingProcessor implements MessageProcessor<InboundReport> {
  private readonly deps: VerifyDeps;
  private readonly metrics: ProxyMetrics;

  constructor(deps: VerifyDeps) {
    this.deps = deps;
    this.metrics = deps.metrics ?? NO_METRICS;
  }

  async start(head: MessageHead, envelope: Envelope): Promise<MessageRun<InboundReport>> {
    const settings = this.deps.settings();
    const stripped = withoutForgedResults(head.fields, settings.authservId);
    const author = authorDomain(stripped.fields);
    const message: InboundMessage = { fields: stripped.fields, envelope, authorDomain: author.ok ? author.domain : null };
    const dkim = dkimCheck(message, settings, this.deps);
    const headerBlock = stripped.removed === 0 ? head.block : Buffer.from(stripped.fields.map((f) => f.raw).join(''), 'latin1');
    return {
      update: (chunk) => dkim.update(chunk),
      finish: async () => {
        const results: InboundResults = { dkim: await dkim.finish() };
        this.metrics.verified(results.dkim.outcomes);
        const authenticationResults = formatAuthenticationResultsField(settings.authservId, dkimResinfos(results.dkim.outcomes), skippedNote(results.dkim.skipped));
        return {
          prepend: Buffer.from(authenticationResults, 'latin1'),
          headerBlock,
          report: { ...results, forgedRemoved: stripped.removed, authenticationResults },
        };
      },
    };
  }

  logFields(report: InboundReport): Record<string, unknown> {
    return {
      results: report.dkim.outcomes.map((o) => {
        const v = viewOutcome(o);
        const entry: Record<string, string | undefined> = { result: v.result, d: v.sig.d, s: v.sig.s, a: v.sig.a };
        if (v.reason !== undefined) entry['reason'] = v.reason;
        return entry;
      }),
      ...(report.dkim.skipped > 0 ? { signaturesNotChecked: report.dkim.skipped } : {}),
      ...(report.forgedRemoved > 0 ? { forgedResultsRemoved: report.forgedRemoved } : {}),
    };
  }
}
