/**
 * `in`'s processor: Authentication-Results that claim our authserv-id are
 * removed (forged upstream, RFC 8601 §5), each check runs over the message,
 * and one Authentication-Results field with every check's results goes in
 * front. `dkim-proxy verify` runs this very processor.
 *
 * A check is a step, started as soon as its input is known so that its DNS
 * lookups run while the rest arrives: SPF needs only the envelope (the
 * listener starts it at the first RCPT, see `early`), the DMARC policy and
 * the DKIM keys need the header block, DMARC's verdict needs the others'
 * results. A new check (ARC) is one more step and one more field of
 * `InboundResults`.
 */
import { isIP } from 'node:net';
import {
  commentText,
  dkimResinfos,
  formatAuthenticationResultsField,
  MessageVerifier,
  viewOutcome,
  skippedNote,
  type DkimOutcome,
  type HeaderField,
  type KeyAnswer,
} from '../dkim/index.js';
import { arcResinfo } from '../arc/header.js';
import { authservIdOf } from '../authres/parse.js';
import { fieldValue } from '../dkim/signature.js';
import { MessageSealer, type PreparedSealer } from '../arc/seal.js';
import { applyTrustedForwarder, isTrustedSealer } from '../arc/trust.js';
import { ArcVerifier, type ArcOutcome } from '../arc/verify.js';
import type { InboundCheck } from '../config/types.js';
import { BodyHashSet } from '../dkim/bodyhash.js';
import { causeOf } from '../dkim/cause.js';
import { parseHeaderBlock } from '../dkim/headers.js';
import { discoverPolicy, evaluateDmarc, type Discovery, type DmarcOutcome } from '../dmarc/evaluate.js';
import { fromDomain } from '../dmarc/from.js';
import { dmarcResinfo } from '../dmarc/header.js';
import type { KeyLookup } from '../dns/resolver.js';
import type { WireResolver } from '../dns/wire.js';
import { NO_METRICS, type ProxyMetrics } from '../ops/metrics.js';
import { authorDomain } from '../policy/author.js';
import { PolicyReply } from '../smtp/replies.js';
import { checkSpf, type SpfOutcome } from '../spf/evaluate.js';
import { receivedSpfField, spfResinfo, type MailfromForm } from '../spf/header.js';
import type { Envelope, MessageHead, MessageProcessor, MessageRun, Processed } from './message.js';
import type { Writable } from '../util/objects.js';

export interface VerifySettings {
  readonly authservId: string;
  readonly maxSignatures: number;
  readonly allowSha1: boolean;
  readonly allowShortKeys: boolean;
  readonly checks: readonly InboundCheck[];
  /** %{r} in SPF explanations, and the receiver of Received-SPF. */
  readonly hostname: string;
  readonly receivedSpf: boolean;
  /** smtp.mailfrom as the address (default) or its domain (for OpenDMARC 1.4). */
  readonly spfMailfrom?: MailfromForm;
  readonly rejectFail: boolean;
  readonly rejectError: boolean;
  readonly xDkimAuthenticationResults: boolean;
  /** ARC-Seal d= domains trusted to vouch for a DMARC fail (default none). */
  readonly arcTrustedSealers?: readonly string[];
}

export interface DkimVerification {
  /** One per checked signature, top to bottom. */
  readonly outcomes: readonly DkimOutcome[];
  /** Signatures past `max_signatures`: not checked, not listed. */
  readonly skipped: number;
}

export interface InboundResults {
  /** Undefined for a check that did not run. */
  readonly dkim: DkimVerification | undefined;
  readonly spf: SpfOutcome | undefined;
  readonly dmarc: DmarcOutcome | undefined;
  readonly arc: ArcOutcome | undefined;
}

/** What `reject_fail` and `reject_error` decided; `accept` when neither applies. */
export type Verdict =
  | { readonly action: 'accept' }
  | { readonly action: 'reject'; readonly reason: string }
  /** RFC 7372: X.7.24 is an SPF validation error; the others have no code of their own. */
  | { readonly action: 'defer'; readonly reason: string; readonly enhanced: '4.7.24' | '4.7.0' };

export interface InboundReport extends InboundResults {
  /** Forged Authentication-Results fields removed. */
  readonly forgedRemoved: number;
  /** The field prepended (with CRLF). */
  readonly authenticationResults: string;
  readonly verdict: Verdict;
  /** The ARC set we added ([in] arc_seal), or why none was. */
  readonly sealed?: { readonly instance: number; readonly cv: string } | { readonly refused: string };
}

export interface VerifyDeps {
  readonly settings: () => VerifySettings;
  /** DKIM keys. */
  readonly lookup: KeyLookup;
  /** SPF and DMARC lookups: names and TXT octets as they are (see dns/wire.ts). */
  readonly dns: WireResolver;
  /** Seconds since the epoch. */
  readonly now: () => number;
  readonly metrics?: ProxyMetrics;
  /** For DMARC's pct sampling; [0, 1). */
  readonly random?: () => number;
  /** The sealer when `in` seals at receipt; undefined when it does not. */
  readonly sealer?: () => PreparedSealer | undefined;
  /** Whether other transactions are under way: the seal's RSA operations then go to libuv's thread pool (see SigningDeps). */
  readonly offload?: () => boolean;
}

/** The message as the checks see it: forged results already gone. */
export interface InboundMessage {
  readonly fields: readonly HeaderField[];
  readonly envelope: Envelope;
  readonly authorDomain: string | null;
}

/** What is started before the header block: the SPF check, from the envelope. */
export interface EarlyChecks {
  readonly spf: Promise<SpfOutcome> | undefined;
}

/** A promise that is awaited later, or never (a message refused for its size): its rejection must not end the process. */
function started<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** DKIM (RFC 6376): every signature up to the limit, author-aligned ones first. */
function dkimCheck(message: InboundMessage, settings: VerifySettings, deps: VerifyDeps, bodies: BodyHashSet): () => Promise<DkimVerification> {
  const verifier = new MessageVerifier(message.fields, {
    maxSignatures: settings.maxSignatures,
    allowSha1: settings.allowSha1,
    allowShortKeys: settings.allowShortKeys,
    authorDomain: message.authorDomain ?? undefined,
    bodies,
  });
  const keys = lookupAll(verifier.keyQueries(), deps);
  return async () => ({ outcomes: verifier.finish(await keys, deps.now()), skipped: verifier.skipped });
}

/** ARC (RFC 8617): the chain's form now, its keys asked for now, its signatures checked when the body is in. */
function arcCheck(message: InboundMessage, settings: VerifySettings, deps: VerifyDeps, bodies: BodyHashSet): () => Promise<ArcOutcome> {
  const verifier = new ArcVerifier(message.fields, { maxSignatures: settings.maxSignatures, allowSha1: settings.allowSha1, allowShortKeys: settings.allowShortKeys, bodies });
  const keys = lookupAll(verifier.keyQueries(), deps);
  return async () => verifier.finish(await keys, deps.now());
}

/** Key records by name, the lookups started at once and shared by name. */
function lookupAll(names: readonly string[], deps: VerifyDeps): Promise<Map<string, KeyAnswer>> {
  return started(Promise.all(names.map(async (n) => [n, await deps.lookup(n)] as [string, KeyAnswer])).then((entries) => new Map(entries)));
}

/** SPF (RFC 7208) for the envelope's client; undefined when the client is not known (an offline check without --client-ip). */
export function spfCheck(envelope: Envelope, settings: VerifySettings, deps: VerifyDeps): Promise<SpfOutcome> | undefined {
  if (!settings.checks.includes('spf')) return undefined;
  const identity = envelope.mailFrom === '' ? 'helo' : 'mailfrom';
  const helo = envelope.helo ?? '';
  const sender = identity === 'helo' ? `postmaster@${helo}` : envelope.mailFrom;
  const unknown = (reason: string): Promise<SpfOutcome> =>
    Promise.resolve({ result: 'none', identity, sender, domain: sender.slice(sender.lastIndexOf('@') + 1), mechanism: undefined, explanation: undefined, reason });
  if (envelope.clientAddressUnavailable) return unknown('the client address is unavailable (XFORWARD ADDR=[UNAVAILABLE])');
  if (envelope.clientAddress === undefined) return undefined;
  if (isIP(envelope.clientAddress) === 0) return unknown(`the client address "${envelope.clientAddress}" is not an IP address`);
  return started(checkSpf({ ip: envelope.clientAddress, mailFrom: envelope.mailFrom, helo, receiver: settings.hostname, now: deps.now() }, deps.dns));
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

/** The authserv-id an Authentication-Results field names (the same reader the ARC sealer uses), lower case. */
export function resultsAuthservId(field: HeaderField): string | undefined {
  return authservIdOf(fieldValue(field));
}

const counted = (outcomes: readonly DkimOutcome[]): DkimOutcome[] => outcomes.filter((o) => !viewOutcome(o).testing);

/**
 * `reject_fail`: a DMARC fail whose disposition (after pct) is reject.
 * `reject_error`: a temporary error that left the verdict open, so that
 * trying again may decide it: a DMARC record that could not be read, or a
 * DMARC fail with an SPF or DKIM lookup that failed temporarily; without
 * DMARC, a temporary error with nothing that passed. A permerror never
 * defers: trying again gives the same answer.
 */
export function decideVerdict(r: InboundResults, settings: VerifySettings): Verdict {
  // An open verdict is deferred before a fail is rejected: what failed may pass once the lookup answers.
  const deferral = settings.rejectError ? openVerdict(r, settings) : undefined;
  if (deferral) return deferral;
  if (settings.rejectFail && r.dmarc?.result === 'fail' && r.dmarc.disposition === 'reject') {
    return { action: 'reject', reason: `DMARC policy of ${r.dmarc.domain ?? '?'} is reject and the message failed it: ${r.dmarc.reason}` };
  }
  return { action: 'accept' };
}

/** The deferral when a temporary error left the verdict undecided; undefined when it did not. */
function openVerdict(r: InboundResults, settings: VerifySettings): Verdict | undefined {
  const dkimTemp = counted(r.dkim?.outcomes ?? []).filter((o) => o.result === 'temperror');
  const spfTemp = r.spf?.result === 'temperror';
  // A trusted sealer's chain that could not be checked might yet have overridden a DMARC fail.
  const arcTemp = r.arc?.temporary === true && r.arc.sealer !== undefined && isTrustedSealer(r.arc.sealer.d, settings.arcTrustedSealers ?? []);
  const temporary = [
    ...(spfTemp ? [`SPF: ${r.spf!.reason}`] : []),
    ...dkimTemp.map((o) => `DKIM d=${o.sig.d ?? '?'}: ${viewOutcome(o).detail ?? viewOutcome(o).reason ?? 'dns error'}`),
    ...(r.dmarc?.result === 'temperror' ? [`DMARC: ${r.dmarc.reason}`] : []),
    ...(arcTemp ? [`ARC ${r.arc!.reason}`] : []),
  ];
  if (temporary.length === 0) return undefined;
  const open = r.dmarc !== undefined
    ? r.dmarc.result === 'temperror' || (r.dmarc.result === 'fail' && (spfTemp || dkimTemp.length > 0 || arcTemp))
    : !(counted(r.dkim?.outcomes ?? []).some((o) => o.result === 'pass') || r.spf?.result === 'pass');
  if (!open) return undefined;
  return { action: 'defer', reason: temporary.join('; '), enhanced: spfTemp && temporary.length === 1 ? '4.7.24' : '4.7.0' };
}

/** The reply for a verdict that refuses or defers. */
export function verdictReply(v: Exclude<Verdict, { action: 'accept' }>): PolicyReply {
  if (v.action === 'reject') return new PolicyReply(550, '5.7.1', `Refused: ${v.reason}`, v.reason);
  return new PolicyReply(451, v.enhanced, `Authentication could not be completed, try again later: ${v.reason}`, v.reason);
}

/** DKIMproxy's X-DKIM-Authentication-Results value: the best signature's result. */
function dkimproxyResult(d: DkimVerification): string {
  const outcomes = counted(d.outcomes);
  if (outcomes.some((o) => o.result === 'pass')) return 'pass';
  const first = outcomes[0];
  if (first === undefined) return 'none';
  const v = viewOutcome(first);
  return v.reason !== undefined ? `${v.result} (${commentText(v.reason)})` : v.result;
}

export class VerifyingProcessor implements MessageProcessor<InboundReport, EarlyChecks> {
  private readonly deps: VerifyDeps;
  private readonly metrics: ProxyMetrics;

  constructor(deps: VerifyDeps) {
    this.deps = deps;
    this.metrics = deps.metrics ?? NO_METRICS;
  }

  early(envelope: Envelope): EarlyChecks {
    return { spf: spfCheck(envelope, this.deps.settings(), this.deps) };
  }

  async start(head: MessageHead, envelope: Envelope, early?: EarlyChecks): Promise<MessageRun<InboundReport>> {
    const settings = this.deps.settings();
    const checks = new Set(settings.checks);
    const stripped = withoutForgedResults(head.fields, settings.authservId);
    const author = authorDomain(stripped.fields);
    const message: InboundMessage = { fields: stripped.fields, envelope, authorDomain: author.ok ? author.domain : null };
    const spf = early !== undefined ? early.spf : spfCheck(envelope, settings, this.deps);
    const bodies = new BodyHashSet();
    const dkim = checks.has('dkim') ? dkimCheck(message, settings, this.deps, bodies) : undefined;
    const arc = checks.has('arc') ? arcCheck(message, settings, this.deps, bodies) : undefined;
    // DMARC decides on SPF or DKIM: offline, with no client to check SPF for, it waits for --client-ip.
    const runDmarc = checks.has('dmarc') && (spf !== undefined || !checks.has('spf'));
    const discovery: Promise<Discovery> | undefined = runDmarc ? started(discoverPolicy(fromDomain(stripped.fields), this.deps.dns)) : undefined;
    const headerBlock = stripped.removed === 0 ? head.block : Buffer.from(stripped.fields.map((f) => f.raw).join(''), 'latin1');
    const preparedSealer = this.deps.sealer?.();
    const sealer = preparedSealer && new MessageSealer(preparedSealer, bodies);
    return {
      update: (chunk) => bodies.update(chunk),
      finish: async () => {
        const [dkimResult, spfResult, policy, arcResult] = await Promise.all([dkim?.(), spf, discovery, arc?.()]);
        const evaluated =
          policy === undefined
            ? undefined
            : evaluateDmarc(
                policy,
                {
                  dkimPass: counted(dkimResult?.outcomes ?? []).filter((o) => o.result === 'pass').map((o) => o.sig.d ?? ''),
                  spf: spfResult === undefined ? undefined : { result: spfResult.result, domain: spfResult.domain },
                },
                this.deps.random,
              );
        const dmarc = evaluated && applyTrustedForwarder(evaluated, arcResult, settings.arcTrustedSealers ?? []);
        const results: InboundResults = { dkim: dkimResult, spf: spfResult, dmarc, arc: arcResult };
        if (dkimResult) this.metrics.verified(dkimResult.outcomes);
        if (spfResult) this.metrics.spf(spfResult.result);
        if (dmarc) this.metrics.dmarc(dmarc.result, dmarc.policy ?? 'none', dmarc.disposition ?? 'none');
        if (arcResult) this.metrics.arc(arcResult.result);
        const remoteIp = envelope.clientAddress !== undefined && isIP(envelope.clientAddress) !== 0 ? envelope.clientAddress : undefined;
        const resinfos = [
          ...(spfResult ? [spfResinfo(spfResult, settings.spfMailfrom)] : []),
          ...(dkimResult ? dkimResinfos(dkimResult.outcomes) : []),
          ...(dmarc ? [dmarcResinfo(dmarc)] : []),
          ...(arcResult ? [arcResinfo(arcResult, remoteIp)] : []),
        ];
        const authenticationResults = formatAuthenticationResultsField(settings.authservId, resinfos.length > 0 ? resinfos : ['none'], skippedNote(dkimResult?.skipped ?? 0));
        const extra = [
          ...(settings.receivedSpf && spfResult && envelope.clientAddress !== undefined ? [receivedSpfField(spfResult, { ip: envelope.clientAddress, helo: envelope.helo ?? '' }, settings.hostname)] : []),
          ...(settings.xDkimAuthenticationResults && dkimResult ? [`X-DKIM-Authentication-Results: ${dkimproxyResult(dkimResult)}\r\n`] : []),
        ];
        const verdict = decideVerdict(results, settings);
        const refusal = verdict.action === 'accept' ? undefined : verdictReply(verdict);
        let prepend = authenticationResults + extra.join('');
        let sealed: InboundReport['sealed'];
        if (sealer && !refusal) {
          // Sealed over the message as it is delivered: our results on top, forged ones gone.
          const sealFields = [...parseHeaderBlock(prepend), ...stripped.fields];
          const seal = this.deps.offload?.() ? await sealer.sealAsync(sealFields, this.deps.now()) : sealer.seal(sealFields, this.deps.now());
          this.metrics.arcSeal(seal.ok ? seal.cv : 'refused');
          if (seal.ok) prepend = seal.fields.join('') + prepend;
          sealed = seal.ok ? { instance: seal.instance, cv: seal.cv } : { refused: seal.reason };
        }
        const report: Writable<InboundReport> = { dkim: results.dkim, spf: results.spf, dmarc: results.dmarc, arc: results.arc, forgedRemoved: stripped.removed, authenticationResults, verdict };
        if (sealed) report.sealed = sealed;
        const processed: Writable<Processed<InboundReport>> = { prepend: Buffer.from(prepend, 'latin1'), headerBlock, report };
        if (refusal) processed.refusal = refusal;
        return processed;
      },
    };
  }

  logFields(report: InboundReport): Record<string, unknown> {
    const { dkim, spf, dmarc, arc } = report;
    // Built property by property, in the order they have always had (util/objects.ts says why).
    const fields: Record<string, unknown> = {};
    if (dkim) {
      fields['results'] = dkim.outcomes.map((o) => {
        const v = viewOutcome(o);
        const entry: Record<string, string | undefined> = { result: v.result, d: v.sig.d, s: v.sig.s, a: v.sig.a };
        if (v.reason !== undefined) entry['reason'] = v.reason;
        const cause = causeOf(o);
        if (cause !== 'ok') entry['cause'] = cause;
        return entry;
      });
      if (dkim.skipped > 0) fields['signaturesNotChecked'] = dkim.skipped;
    }
    if (spf) fields['spf'] = { result: spf.result, identity: spf.identity, sender: spf.sender, reason: spf.reason };
    if (dmarc) {
      const entry: Record<string, unknown> = { result: dmarc.result, domain: dmarc.domain, policy: dmarc.policy, disposition: dmarc.disposition, reason: dmarc.reason };
      if (dmarc.override) {
        entry['override'] = dmarc.override.type;
        entry['overrideBy'] = dmarc.override.sealer;
      }
      fields['dmarc'] = entry;
    }
    if (arc && arc.result !== 'none') fields['arc'] = { result: arc.result, instance: arc.instance, oldestPass: arc.oldestPass, sealer: arc.sealer?.d, reason: arc.reason };
    if (report.sealed) fields['arcSealed'] = report.sealed;
    if (report.verdict.action !== 'accept') {
      fields['verdict'] = report.verdict.action;
      fields['verdictReason'] = report.verdict.reason;
    }
    if (report.forgedRemoved > 0) fields['forgedResultsRemoved'] = report.forgedRemoved;
    return fields;
  }
}
