/** The validated configuration: one immutable object, built once per load. */
import type { PreparedSealer } from '../arc/seal.js';
import type { AuthUser } from '../auth/users.js';
import type { VaultSettings } from './vault.js';
import type { Canonicalization, PreparedSigner, SigningAlgorithm, SigningKey } from '../dkim/index.js';

export type DnsPolicy = 'SignAlways' | 'SignOnlyIfInDNS' | 'TempFailIfNotInDNS';
export type AdditionalPolicy = 'Always' | 'OnlyIfMissingDomainBlock';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** What every signing block can say; `[signing]` gives the defaults. */
export interface SignatureSettings {
  /** The selector this signer signs with (the first of `selectors` before they are split into signers). */
  readonly selector: string;
  /** Key rotation: the selectors in order of preference; the first published one that matches its key signs. */
  readonly selectors: readonly string[];
  readonly algorithm: SigningAlgorithm;
  readonly canonicalization: Canonicalization;
  readonly headers: readonly string[];
  readonly overSign: boolean;
  /** Template with `%{d}` and `%{s}`. */
  readonly keyFile: string;
  readonly identity: string | undefined;
  /** Signature lifetime (x= - t=), seconds. */
  readonly expire: number | undefined;
  readonly bodyLength: boolean;
  readonly copyHeaders: boolean;
}

/** A resolved signer: settings plus the domain, and the key loaded at startup. */
export interface Signer extends SignatureSettings {
  /** The signing domain (d=). */
  readonly domain: string;
  /** Where the key came from: a file path or a vault path. */
  readonly keySource: string;
  readonly key: SigningKey;
  /** When the key was made (its file's mtime, Vault's created_time), ms since the epoch; undefined when unknown. */
  readonly keyCreatedAt: number | undefined;
  /** The engine's signer, checked once at load. */
  readonly prepared: PreparedSigner;
}

export interface DomainBlock {
  /** The author domain the block matches (lower-case A-label). */
  readonly name: string;
  /** Mail from any subdomain is signed with this block too (Momentum's base_domain). */
  readonly subdomains: boolean;
  readonly policy: DnsPolicy;
  readonly additionalSignatures: readonly string[];
  /** The first of `candidates`. */
  readonly signer: Signer;
  /** One signer per selector, in the order of `selectors` (one for a single `selector`). */
  readonly candidates: readonly Signer[];
}

export interface SignatureBlock {
  readonly name: string;
  readonly policy: AdditionalPolicy;
  readonly signer: Signer;
  readonly candidates: readonly Signer[];
}

export interface SigningConfig {
  readonly domains: ReadonlyMap<string, DomainBlock>;
  readonly signatures: ReadonlyMap<string, SignatureBlock>;
  /** additional_signatures for mail that matches no domain block. */
  readonly defaultAdditional: readonly string[];
  /** Next hops that reject more than one DKIM-Signature: keep only the first. */
  readonly singleSignature: boolean;
  /** What to do with mail no rule signs: pass it on unsigned, or refuse it (550). */
  readonly unsigned: 'relay' | 'refuse';
  /** A key older than this (seconds) is a warning; undefined: no bound. */
  readonly maxKeyAge: number | undefined;
  /** How long a replaced selector stays published after its successor took over (seconds). */
  readonly retireAfter: number;
  /** Where keys come from when they are in Vault (rotate new writes the next one there). */
  readonly vault: VaultSettings | undefined;
  /** Whose domain picks the signing rules: the From header's (default), the envelope sender's, or Sender's (then From's). */
  readonly match: 'header_from' | 'envelope_from' | 'sender';
  /** Verify each signature against its own public key before relaying (default on). */
  readonly selfCheck: boolean;
}

export interface ListenerConfig {
  readonly listen: HostPort;
  readonly relay: HostPort;
  /** What clients speak to us. */
  readonly protocol: 'smtp' | 'lmtp';
  /** What we speak to the next hop: LMTP gives one reply per recipient (RFC 2033). */
  readonly relayProtocol: 'smtp' | 'lmtp';
  /** CIDR blocks allowed to connect; everyone else gets 554 at connect. With a balancer, the original client's address is the one checked. */
  readonly allowClients: readonly string[];
  /** Load balancers (CIDR blocks) that must send a PROXY header (v1 or v2) first; its client is then the client. */
  readonly proxyProtocolFrom: readonly string[];
  readonly maxMessageBytes: number;
  /** Above this, a message in flight is spooled to a private temp file. */
  readonly spoolThresholdBytes: number;
  /** Where spool files go (default: the system temp directory). */
  readonly spoolDir: string | undefined;
  readonly maxHeaderBytes: number;
  readonly maxHeaderFields: number;
  readonly maxConnections: number;
  /** Connections one client address may hold at once. */
  readonly maxConnectionsPerClient: number;
  readonly idleTimeoutMs: number;
  /** Deadline for each command, however often the client sends a byte. */
  readonly commandTimeoutMs: number;
  /** Deadline for the whole message after 354. */
  readonly dataTimeoutMs: number;
  readonly relayTimeoutMs: number;
  /** The name we give in our banner and EHLO to the next hop. */
  readonly hostname: string;
  readonly tls: { readonly cert: string; readonly key: string } | undefined;
  readonly relayTls: 'off' | 'opportunistic' | 'required';
}

export interface OutListenerConfig extends ListenerConfig {
  /** Seal each message on the way out with the results our `in` wrote (a list's or forwarder's ARC set). */
  readonly arcSeal: boolean;
  /** SMTP AUTH (PLAIN, LOGIN; over TLS or from loopback) against this file of users. */
  readonly authUsersFile: string | undefined;
  /** The users of `authUsersFile`, read at load (and on each reload). */
  readonly authUsers: ReadonlyMap<string, AuthUser> | undefined;
  /** Momentum's sign_condition: `can_relay` signs for clients in allow_clients; `auth_user` only for an authenticated user's own domains. */
  readonly signCondition: 'can_relay' | 'auth_user';
  /** `7bit`: 8-bit parts and long lines re-encoded before signing (RFC 6376 §5.3), so no hop has to; `preserve`: the bytes as they came. */
  readonly transportEncoding: '7bit' | 'preserve';
}

export type InboundCheck = 'dkim' | 'spf' | 'dmarc' | 'arc';

export interface InListenerConfig extends ListenerConfig {
  readonly authservId: string;
  readonly maxSignatures: number;
  readonly allowSha1: boolean;
  readonly allowShortKeys: boolean;
  /** What `in` checks (default: all three). */
  readonly checks: readonly InboundCheck[];
  /** Add a Received-SPF field (RFC 7208 §9.1) beside Authentication-Results. */
  readonly receivedSpf: boolean;
  /** What smtp.mailfrom holds in our A-R: the address, or its domain (OpenDMARC 1.4 reads only that). */
  readonly spfMailfrom: 'address' | 'domain';
  /** 550 5.7.1 for a DMARC fail whose disposition (after pct) is reject. */
  readonly rejectFail: boolean;
  /** 451 4.7.x when a temporary DNS error left the verdict undecided. */
  readonly rejectError: boolean;
  /** DKIMproxy's X-DKIM-Authentication-Results field (pass, fail, none...). */
  readonly xDkimAuthenticationResults: boolean;
  /** Seal at receipt with the results just computed (a sealing gateway). */
  readonly arcSeal: boolean;
  /** ARC-Seal d= domains whose passing chain overrides a DMARC fail to disposition none (RFC 7489 trusted_forwarder). */
  readonly arcTrustedSealers: readonly string[];
}

/** `[arc]`: who seals, with which key. */
export interface ArcConfig {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: SigningAlgorithm;
  /** The key_file template as configured (`%{d}`, `%{s}`). */
  readonly keyFile: string;
  readonly keySource: string;
  readonly key: SigningKey;
  readonly keyCreatedAt: number | undefined;
  readonly authservId: string;
  /** The engine's sealer, checked once at load. */
  readonly sealer: PreparedSealer;
}

export interface DnsConfig {
  readonly servers: readonly string[];
  readonly timeoutMs: number;
  /** Bounds on how long answers are cached, and for how long a missing record is remembered. */
  readonly cacheTtlSeconds: number;
  readonly negativeTtlSeconds: number;
  readonly cacheEntries: number;
}

export interface ProxyConfig {
  readonly file: string;
  /** The file's text as it was read: workers get this, so they build the very same config. */
  readonly text: string;
  readonly out: OutListenerConfig | undefined;
  readonly in: InListenerConfig | undefined;
  readonly arc: ArcConfig | undefined;
  readonly dns: DnsConfig;
  readonly signing: SigningConfig;
  readonly log: {
    readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
    /** auto: readable (pino-pretty) when stdout is a terminal, JSON lines otherwise. */
    readonly format: 'auto' | 'json' | 'pretty';
  };
  readonly metrics: { readonly listen: HostPort | undefined };
  /** Processes sharing the listeners (node:cluster); default: the number of cores. */
  readonly workers: number;
}
