/**
 * `out`'s processor: which signatures the message gets (the author domain,
 * the [domain] blocks and their DNS policies), then the signatures, made in
 * the same pass over the body. `dkim-proxy sign --config` runs this very
 * processor, so the offline answer is the proxy's.
 */
import { MessageSigner } from '../dkim/index.js';
import type { SigningConfig } from '../config/types.js';
import type { KeyLookup } from '../dns/resolver.js';
import { NO_METRICS, type ProxyMetrics } from '../ops/metrics.js';
import { authorDomain } from '../policy/author.js';
import { planSignatures } from '../policy/signing.js';
import { replies } from '../smtp/replies.js';
import type { MessageHead, MessageProcessor, MessageRun, Processed } from './message.js';

export interface SignatureMade {
  readonly d: string;
  readonly s: string;
  readonly a: string;
}

export type SigningReport =
  | { readonly kind: 'signed'; readonly authorDomain: string | null; readonly signatures: readonly SignatureMade[]; readonly notes: readonly string[] }
  /** No rule signs it, and `unsigned = "relay"`: it goes on as it came. */
  | { readonly kind: 'unsigned'; readonly authorDomain: string | null; readonly reason: string };

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
}

const NONE = Buffer.alloc(0);

export class SigningProcessor implements MessageProcessor<SigningReport> {
  private readonly deps: SigningDeps;
  private readonly metrics: ProxyMetrics;

  constructor(deps: SigningDeps) {
    this.deps = deps;
    this.metrics = deps.metrics ?? NO_METRICS;
  }

  async start(head: MessageHead): Promise<MessageRun<SigningReport>> {
    const signing = this.deps.signing();
    const author = authorDomain(head.fields);
    const domain = author.ok ? author.domain : null;
    const plan = await planSignatures(signing, domain, this.deps.lookup);
    switch (plan.kind) {
      case 'tempfail':
        this.metrics.signing(domain, 'tempfail', []);
        throw replies.notSigned(plan.reason);
      case 'unsigned': {
        const reason = author.ok ? plan.reason : author.reason;
        if (signing.unsigned === 'refuse') {
          this.metrics.signing(domain, 'refused', []);
          throw replies.refusedUnsigned(reason);
        }
        this.metrics.signing(domain, 'unsigned', []);
        const done: Processed<SigningReport> = { prepend: NONE, headerBlock: head.block, report: { kind: 'unsigned', authorDomain: domain, reason } };
        return { update: () => {}, finish: () => Promise.resolve(done) };
      }
      case 'sign':
        break;
    }
    const signer = new MessageSigner(head.fields, plan.signers.map((s) => s.prepared));
    const offload = this.deps.offload ?? (() => false);
    return {
      update: (chunk) => signer.update(chunk),
      finish: async () => {
        const now = this.deps.now();
        const fields = offload() ? await signer.finishAsync(now) : signer.finish(now);
        this.metrics.signing(plan.signers[0]!.domain, 'signed', plan.signers);
        const signatures = plan.signers.map((x) => ({ d: x.domain, s: x.selector, a: x.algorithm }));
        return { prepend: Buffer.from(fields.join(''), 'latin1'), headerBlock: head.block, report: { kind: 'signed', authorDomain: domain, signatures, notes: plan.notes } };
      },
    };
  }

  logFields(report: SigningReport): Record<string, unknown> {
    switch (report.kind) {
      case 'signed':
        return { authorDomain: report.authorDomain, signatures: report.signatures };
      case 'unsigned':
        return { authorDomain: report.authorDomain, unsigned: report.reason };
    }
  }
}
