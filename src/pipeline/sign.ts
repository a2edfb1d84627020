/**
 * `out`'s processor: which signatures the message gets (the author domain,
 * the [domain] blocks and their DNS policies), then the signatures, made in
 * the same pass over the body. `dkim-proxy sign --config` runs this very
 * processor, so the offline answer is the proxy's.
 */
import { MessageSealer, type PreparedSealer } from '../arc/seal.js';
import { selfCheck } from './self-check.js';
import { BodyHashSet, MessageSigner, parseHeaderBlock } from '../dkim/index.js';
import type { SigningConfig } from '../config/types.js';
import type { KeyLookup } from '../dns/resolver.js';
import { NO_METRICS, type ProxyMetrics } from '../ops/metrics.js';
import { signingIdentity } from '../policy/author.js';
import { isSameOrSubdomain } from '../dkim/signature.js';
import { planSignatures, SelectorMemory, type SelectorSwitch, type SigningPlan } from '../policy/signing.js';
import { replies } from '../smtp/replies.js';
import { NO_ENVELOPE, type Envelope, type MessageHead, type MessageProcessor, type MessageRun } from './message.js';

export interface SignatureMade {
  readonly d: string;
  readonly s: string;
  readonly a: string;
}

/** The ARC set added ([out] arc_seal), or why the chain could not take one. */
export type SealReport = { readonly instance: number; readonly cv: string } | { readonly refused: string };

export type SigningReport =
  | { readonly kind: 'signed'; readonly authorDomain: string | null; readonly signatures: readonly SignatureMade[]; readonly notes: readonly string[]; readonly sealed?: SealReport }
  /** No rule signs it, and `unsigned = "relay"`: it goes on as it came (sealed, when `out` seals). */
  | { readonly kind: 'unsigned'; readonly authorDomain: string | null; readonly reason: string; readonly sealed?: SealReport };

export interface SigningDeps {
  readonly signing: () => SigningConfig;
  readonly lookup: KeyLookup;
  /** Seconds since the epoch. */
  readonly now: () => number;
  readonly metrics?: ProxyMetrics;
  /**
   * Whether other transactions are under way: the RSA operation then goes to
   * libuv's thread pool, so that their I/O is not held up behind it; alone,
   * the hand-over would cost more than it saves.
   */
  readonly offload?: () => boolean;
  /** The sealer when `out` seals; undefined when it does not. */
  readonly sealer?: () => PreparedSealer | undefined;
  /** A block's signing selector changed (key rotation took over): told once per change and process. */
  readonly selectorChanged?: (change: SelectorSwitch) => void;
  /** Momentum's sign_condition: `auth_user` signs only for an authenticated user's own domains (default `can_relay`). */
  readonly signCondition?: () => 'can_relay' | 'auth_user';
  /** A signature failed its self-check ([signing] self_check): for the log. */
  readonly selfCheckFailed?: (failure: { readonly domain: string; readonly selector: string; readonly reason: string }) => void;
}

/**
 * `sign_condition = "auth_user"`: why this session may not sign as `domain`
 * (not authenticated, or not its domain); undefined when it may. Then no
 * signature is made at all, not even an additional one.
 */
function notEntitled(envelope: Envelope, domain: string | null): string | undefined {
  const user = envelope.user;
  if (user === undefined) return 'not authenticated (sign_condition = "auth_user" signs only for authenticated users)';
  if (domain === null) return `no signing domain, and ${user.name} may sign only for ${user.domains.join(', ')}`;
  if (!user.domains.some((d) => isSameOrSubdomain(domain, d))) return `${user.name} may not sign for ${domain} (only for ${user.domains.join(', ')})`;
  return undefined;
}

export class SigningProcessor implements MessageProcessor<SigningReport> {
  private readonly deps: SigningDeps;
  private readonly metrics: ProxyMetrics;
  private readonly selectors = new SelectorMemory();

  constructor(deps: SigningDeps) {
    this.deps = deps;
    this.metrics = deps.metrics ?? NO_METRICS;
  }

  async start(head: MessageHead, envelope: Envelope = NO_ENVELOPE): Promise<MessageRun<SigningReport>> {
    const signing = this.deps.signing();
    const author = signingIdentity(signing.match, head.fields, envelope.mailFrom);
    const domain = author.ok ? author.domain : null;
    const refusal = this.deps.signCondition?.() === 'auth_user' ? notEntitled(envelope, domain) : undefined;
    const plan: SigningPlan = refusal !== undefined ? { kind: 'unsigned', reason: refusal } : await planSignatures(signing, domain, this.deps.lookup, this.selectors, this.deps.selectorChanged);
    let unsignedReason: string | undefined;
    switch (plan.kind) {
      case 'tempfail':
        this.metrics.signing(domain, 'tempfail', []);
        throw replies.notSigned(plan.reason);
      case 'unsigned': {
        unsignedReason = author.ok || refusal !== undefined ? plan.reason : author.reason;
        if (signing.unsigned === 'refuse') {
          this.metrics.signing(domain, 'refused', []);
          throw replies.refusedUnsigned(unsignedReason);
        }
        break;
      }
      case 'sign':
        break;
    }
    const bodies = new BodyHashSet();
    const signers = plan.kind === 'sign' ? plan.signers : [];
    const signer = signers.length > 0 ? new MessageSigner(head.fields, signers.map((s) => s.prepared), bodies) : undefined;
    const preparedSealer = this.deps.sealer?.();
    const sealer = preparedSealer && new MessageSealer(preparedSealer, bodies);
    const offload = this.deps.offload ?? (() => false);
    return {
      update: (chunk) => bodies.update(chunk),
      finish: async () => {
        const now = this.deps.now();
        const fields = signer === undefined ? [] : offload() ? await signer.finishAsync(now) : signer.finish(now);
        if (signer !== undefined && signing.selfCheck) {
          const failed = selfCheck(fields, signers, head.fields, bodies, now);
          if (failed) {
            this.metrics.selfCheckFailed(failed.signer.domain);
            this.deps.selfCheckFailed?.({ domain: failed.signer.domain, selector: failed.signer.selector, reason: failed.reason });
            throw replies.notSigned(`the signature for d=${failed.signer.domain} s=${failed.signer.selector} failed its self-check`);
          }
        }
        // RFC 8617 §5.1: the seal goes on last, so that its AMS covers our DKIM-Signature.
        let sealed: SealReport | undefined;
        let prepend = fields.join('');
        if (sealer) {
          const sealFields = [...parseHeaderBlock(prepend), ...head.fields];
          const seal = offload() ? await sealer.sealAsync(sealFields, now) : sealer.seal(sealFields, now);
          this.metrics.arcSeal(seal.ok ? seal.cv : 'refused');
          if (seal.ok) prepend = seal.fields.join('') + prepend;
          sealed = seal.ok ? { instance: seal.instance, cv: seal.cv } : { refused: seal.reason };
        }
        const extra = sealed ? { sealed } : {};
        if (signer === undefined) {
          this.metrics.signing(domain, 'unsigned', []);
          return { prepend: Buffer.from(prepend, 'latin1'), headerBlock: head.block, report: Object.assign({ kind: 'unsigned' as const, authorDomain: domain, reason: unsignedReason ?? 'not signed' }, extra) };
        }
        this.metrics.signing(signers[0]!.domain, 'signed', signers);
        const signatures = signers.map((x) => ({ d: x.domain, s: x.selector, a: x.algorithm }));
        return { prepend: Buffer.from(prepend, 'latin1'), headerBlock: head.block, report: Object.assign({ kind: 'signed' as const, authorDomain: domain, signatures, notes: plan.kind === 'sign' ? plan.notes : [] }, extra) };
      },
    };
  }

  logFields(report: SigningReport): Record<string, unknown> {
    switch (report.kind) {
      case 'signed':
        return Object.assign({ authorDomain: report.authorDomain, signatures: report.signatures }, report.sealed ? { arcSealed: report.sealed } : {});
      case 'unsigned':
        return Object.assign({ authorDomain: report.authorDomain, unsigned: report.reason }, report.sealed ? { arcSealed: report.sealed } : {});
    }
  }
}
