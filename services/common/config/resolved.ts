/**
 * The resolved configuration the services run on: what the operator (or `postern local/apply`) writes to the
 * NATS KV bucket `config`, one document per key. Secrets are already resolved here: AUTH users as password
 * hashes only, smarthost passwords and DKIM keys sealed (secrets.ts), never clear text.
 */
import type { Sealed } from '../secrets.ts';
import type { RetryPolicy, SmarthostAuth, TlsMode } from '../types.ts';

/** The TLS modes of MX delivery (`none` exists only for direct host routes). */
export type MxTlsMode = Exclude<TlsMode, 'none'>;

export const CONFIG_BUCKET = 'config';

/** KV key of a domain's document (`domain.<domain>`). */
export const domainKey = (domain: string) => `domain.${domain}`;
/** KV key of a policy's document (`policy.<namespace>.<name>`). */
export const policyKey = (namespace: string, name: string) => `policy.${namespace}.${name}`;

export interface DomainConfig {
  /** `<namespace>/<name>` of the MailDomain it came from. */
  source: string;
  domain: string;
  inbound: {
    enabled: boolean;
    /** Lower-cased local parts / addresses, `*` wildcards; undefined = accept all. */
    recipients?: string[];
    deliverTo?: { host: string; port: number; protocol: 'lmtp' | 'smtp'; tls: TlsMode };
    /** Sender authentication policy; absent (documents written before it existed) = DEFAULT_AUTHENTICATION. */
    authentication?: AuthenticationPolicy;
  } | null;
  /** The private key sealed for `SECRET_CONTEXT.dkimKey(domain, selector)`: never clear text in KV. */
  dkim?: { selector: string; privateKey: Sealed };
}

/** MailDomain `spec.inbound.authentication` with its defaults filled in (schema.ts InboundAuthentication). */
export interface AuthenticationPolicy {
  dmarc: 'enforce' | 'tag' | 'off';
  quarantine: 'tag' | 'hold';
  spfFail: 'reject' | 'tag';
  /** Lower-cased ARC sealing domains. */
  trustedArcSealers: string[];
}

/** Verify and tag, refuse nothing: a domain is never stricter than its owner declared. */
export const DEFAULT_AUTHENTICATION: AuthenticationPolicy = {
  dmarc: 'tag',
  quarantine: 'tag',
  spfFail: 'tag',
  trustedArcSealers: [],
};

export interface PolicyUser {
  name: string;
  /** `scrypt$<salt b64>$<hash b64>` (see password.ts). */
  hash: string;
}

export interface PolicyConfig {
  /** `<namespace>/<name>` of the RelayPolicy it came from. */
  source: string;
  networks: string[];
  users: PolicyUser[];
  requireTLS: boolean;
  /** Allowed envelope sender domains; undefined = any. */
  senderDomains?: string[];
  /** ARC-seal relayed mail with this key (RelayPolicy `arcSeal`, the PEM key resolved from its Secret). */
  arcSeal?: { domain: string; selector: string; privateKey: string };
  limits: { messageSize?: number; recipientsPerMessage?: number; messagesPerMinute?: number };
  /** HTTP API keys bound to this policy (docs/api.md): key id and hex SHA-256 of the key, never the key. */
  apiKeys?: { id: string; sha256: string }[];
  delivery: {
    pool: string;
    smarthost?: { host: string; port: number; tls: TlsMode; auth?: SmarthostAuth };
    destinations: {
      match: string;
      /** TLS policy of MX delivery to recipient domains this entry matches. */
      tls?: MxTlsMode;
      maxConnections?: number;
      messagesPerConnection?: number;
      ratePerMinute?: number;
    }[];
    retry: RetryPolicy;
    /** TLS policy of MX delivery (destinations[].tls overrides it per recipient domain). */
    tls: MxTlsMode;
  };
}

/**
 * Postfix-like defaults: first retry after ~5 min, backing off to 1 h, give up after 5 days; a delay warning
 * (NOTIFY=DELAY only) after 4 h like Postfix's delay_warning_time.
 */
export const DEFAULT_RETRY: RetryPolicy = {
  scheduleMs: [5, 10, 20, 40, 60].map((m) => m * 60_000),
  maxLifetimeMs: 5 * 86_400_000,
  delayWarningMs: 4 * 3_600_000,
};

export const DEFAULT_POOL = 'default';

/** What every service holds in memory: the current documents, by key. */
export interface ConfigSnapshot {
  domains: Map<string, DomainConfig>;
  policies: Map<string, PolicyConfig>;
}
