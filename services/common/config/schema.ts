/**
 * The one definition of the MailDomain and RelayPolicy resources (API group postern.dev, v1alpha1).
 * The CRDs in crds/ are generated from these schemas (operator/crd-gen.ts) and the same schemas validate
 * documents at run time (local-mode config files, the operator before it resolves). Rules a structural
 * schema cannot say are CEL `x-kubernetes-validations`, mirrored in `validate.ts` for local mode.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { DURATION_PATTERN } from '../durations.ts';

export const API_GROUP = 'postern.dev';
export const API_VERSION = 'v1alpha1';
export const API = `${API_GROUP}/${API_VERSION}`;

/** RFC 1123 host name (lower case, as Kubernetes stores DNS names). */
export const DOMAIN_PATTERN =
  '^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$';

/** `*`, a domain or host (`example.com`, `127.0.0.1`), an MX host suffix (`.google.com`) or `host:port`. */
export const DESTINATION_MATCH_PATTERN =
  '^(\\*|\\.?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(:[0-9]{1,5})?)$';

const cel = (rule: string, message: string) => ({ rule, message });
const strict = { additionalProperties: false } as const;

const Port = Type.Integer({ minimum: 1, maximum: 65535 });
const Duration = Type.String({ pattern: DURATION_PATTERN, maxLength: 32 });
const Hostname = Type.String({ pattern: DOMAIN_PATTERN, maxLength: 253 });
const Host = Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9._:-]+$' });
/**
 * TLS of a direct host:port route (smarthost, mailbox store): `verify` checks the certificate chain (PKIX) for the
 * configured host. MTA-STS and DANE are properties of a recipient domain's MX hosts, so they exist only for MX
 * routes (`delivery.tls`, `destinations[].tls`).
 */
const HostTlsMode = Type.Union([
  Type.Literal('none'),
  Type.Literal('opportunistic'),
  Type.Literal('required'),
  Type.Literal('verify'),
]);
/** TLS policy of MX delivery (docs/delivery.md "TLS policy"). */
const MxTlsMode = Type.Union([
  Type.Literal('opportunistic'),
  Type.Literal('required'),
  Type.Literal('verify'),
  Type.Literal('mta-sts'),
  Type.Literal('dane'),
]);
const SecretRef = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 253 }),
    key: Type.Optional(Type.String({ maxLength: 253 })),
  },
  strict,
);

/**
 * Sender authentication of inbound mail (SPF, DKIM, DMARC, ARC, iprev; docs/ingress.md "Sender authentication").
 * Every field has a default, so `authentication: {}` (or none at all) verifies and tags without refusing.
 */
export const InboundAuthentication = Type.Object(
  {
    /**
     * enforce: a DMARC failure gets the sender domain's policy (p=reject → 550 5.7.1 at end of DATA,
     * p=quarantine → `quarantine`); tag: results in Authentication-Results only; off: DMARC is not evaluated.
     */
    dmarc: Type.Optional(Type.Union([Type.Literal('enforce'), Type.Literal('tag'), Type.Literal('off')])),
    /** What `dmarc: enforce` does with p=quarantine: tag (header only) or hold (the queue's hold, released by an operator). */
    quarantine: Type.Optional(Type.Union([Type.Literal('tag'), Type.Literal('hold')])),
    /** SPF hard fail (`-all` matched): reject (550 5.7.23 at end of DATA) or tag. */
    spfFail: Type.Optional(Type.Union([Type.Literal('reject'), Type.Literal('tag')])),
    /**
     * ARC sealers (the d= of the newest ARC-Seal) trusted to report what they saw: a passing chain sealed by one
     * of them whose ARC-Authentication-Results say dmarc=pass lets a DMARC or SPF failure pass (RFC 8617 §7.2).
     */
    trustedArcSealers: Type.Optional(Type.Array(Hostname, { maxItems: 100 })),
  },
  {
    ...strict,
    'x-kubernetes-validations': [
      cel(
        "!has(self.quarantine) || (has(self.dmarc) && self.dmarc == 'enforce')",
        'authentication.quarantine applies only with dmarc: enforce',
      ),
      cel(
        "!has(self.trustedArcSealers) || !has(self.dmarc) || self.dmarc != 'off' || (has(self.spfFail) && self.spfFail == 'reject')",
        'authentication.trustedArcSealers excuses DMARC or SPF failures: it needs dmarc enforce/tag or spfFail: reject',
      ),
    ],
  },
);
export type InboundAuthentication = Static<typeof InboundAuthentication>;

export const MailDomainSpec = Type.Object(
  {
    domain: Hostname,
    inbound: Type.Optional(
      Type.Object(
        {
          enabled: Type.Boolean({ default: true }),
          /** Local parts or full addresses served; `*` wildcards. Absent: accept every local part. */
          recipients: Type.Optional(
            Type.Array(Type.String({ minLength: 1, maxLength: 320 }), { maxItems: 10000 }),
          ),
          deliverTo: Type.Optional(
            Type.Object(
              {
                host: Host,
                port: Port,
                protocol: Type.Union([Type.Literal('lmtp'), Type.Literal('smtp')], { default: 'lmtp' }),
                tls: Type.Optional(HostTlsMode),
              },
              strict,
            ),
          ),
          /** Sender authentication of mail for this domain (docs/ingress.md "Sender authentication"). */
          authentication: Type.Optional(InboundAuthentication),
        },
        {
          ...strict,
          'x-kubernetes-validations': [
            cel(
              '!self.enabled || has(self.deliverTo)',
              'inbound.deliverTo is required when inbound is enabled',
            ),
          ],
        },
      ),
    ),
    outbound: Type.Optional(
      Type.Object(
        {
          dkim: Type.Optional(
            Type.Object(
              {
                selector: Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' }),
                keySecretRef: Type.Optional(SecretRef),
                algorithm: Type.Optional(Type.Union([Type.Literal('rsa'), Type.Literal('ed25519')])),
              },
              strict,
            ),
          ),
        },
        strict,
      ),
    ),
  },
  strict,
);
export type MailDomainSpec = Static<typeof MailDomainSpec>;

export const RelayPolicySpec = Type.Object(
  {
    clients: Type.Object(
      {
        /** Client networks allowed to relay (CIDR, IPv4 or IPv6). */
        networks: Type.Optional(
          Type.Array(Type.String({ maxLength: 64 }), {
            maxItems: 1000,
            'x-kubernetes-validations': [cel('self.all(n, isCIDR(n))', 'every network must be a CIDR')],
          }),
        ),
        /** Secret whose keys are user names and values their passwords (SMTP AUTH). */
        authSecretRef: Type.Optional(SecretRef),
        requireTLS: Type.Optional(Type.Boolean()),
      },
      strict,
    ),
    /**
     * The HTTP submission API (docs/api.md): a Secret whose data entries are key id → API key. A request with one
     * of these keys may send what this policy's SMTP clients may send, no more. Only SHA-256 hashes reach KV.
     */
    api: Type.Optional(
      Type.Object(
        { keysSecretRef: Type.Object({ name: Type.String({ minLength: 1, maxLength: 253 }) }, strict) },
        strict,
      ),
    ),
    senders: Type.Optional(
      Type.Object({ domains: Type.Optional(Type.Array(Hostname, { maxItems: 1000 })) }, strict),
    ),
    /**
     * ARC-seal (RFC 8617) the mail this policy relays, as the first hop of its chain: receivers that trust
     * `domain` as a sealer can rely on what Postern saw (the client's AUTH) after a later hop breaks DKIM.
     * The key: Secret `keySecretRef.name`, data key `keySecretRef.key` (default `private.key`), PEM (RSA or
     * Ed25519); publish its public key at `<selector>._domainkey.<domain>`.
     */
    arcSeal: Type.Optional(
      Type.Object(
        {
          domain: Hostname,
          selector: Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' }),
          keySecretRef: SecretRef,
        },
        strict,
      ),
    ),
    limits: Type.Optional(
      Type.Object(
        {
          messageSize: Type.Optional(Type.Integer({ minimum: 1024, maximum: 1_073_741_824 })),
          recipientsPerMessage: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
          messagesPerMinute: Type.Optional(Type.Integer({ minimum: 1 })),
        },
        strict,
      ),
    ),
    delivery: Type.Optional(
      Type.Object(
        {
          pool: Type.Optional(Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$' })),
          smarthost: Type.Optional(
            Type.Object(
              {
                host: Host,
                port: Type.Optional(Port),
                tls: Type.Optional(HostTlsMode),
                authSecretRef: Type.Optional(SecretRef),
              },
              strict,
            ),
          ),
          /**
           * Per-site limits and TLS (docs/delivery.md "Sites, limits and automatic backoff"): `match` is a recipient
           * domain (`example.com`), an MX host suffix (`.google.com`), the smarthost host (`host` or `host:port`)
           * or `*`. Every limit holds for all delivery processes together.
           */
          destinations: Type.Optional(
            Type.Array(
              Type.Object(
                {
                  match: Type.String({ minLength: 1, maxLength: 253, pattern: DESTINATION_MATCH_PATTERN }),
                  /** TLS policy for recipient domains this entry matches (overrides `delivery.tls`). */
                  tls: Type.Optional(MxTlsMode),
                  /** Concurrent SMTP sessions to the site. */
                  maxConnections: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
                  /** Messages over one session before it is closed. */
                  messagesPerConnection: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
                  /** Messages per minute (token bucket, burst one second's worth). */
                  ratePerMinute: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000 })),
                  /** New sessions per minute (token bucket like ratePerMinute). */
                  connectionsPerMinute: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
                },
                {
                  ...strict,
                  'x-kubernetes-validations': [
                    cel(
                      "!has(self.tls) || self.match == '*' || !self.match.startsWith('.')",
                      'destinations[].tls applies to a recipient domain (example.com) or "*", not to an MX host suffix',
                    ),
                    cel(
                      'has(self.tls) || has(self.maxConnections) || has(self.messagesPerConnection) || has(self.ratePerMinute) || has(self.connectionsPerMinute)',
                      'a destinations[] entry needs tls or a limit (maxConnections, messagesPerConnection, ratePerMinute, connectionsPerMinute)',
                    ),
                  ],
                },
              ),
              { maxItems: 1000 },
            ),
          ),
          retry: Type.Optional(
            Type.Object(
              {
                schedule: Type.Optional(Type.Array(Duration, { minItems: 1, maxItems: 50 })),
                maxLifetime: Type.Optional(Duration),
                /**
                 * RFC 3461 NOTIFY=DELAY: a recipient still queued this long after receipt gets one delay warning
                 * (Postfix's delay_warning_time). Default 4h.
                 */
                delayWarning: Type.Optional(Duration),
              },
              strict,
            ),
          ),
          /**
           * TLS policy of relayed mail: MX delivery, and the smarthost when `smarthost.tls` is not set (then only
           * opportunistic, required or verify make sense).
           */
          tls: Type.Optional(MxTlsMode),
        },
        {
          ...strict,
          'x-kubernetes-validations': [
            cel(
              "!has(self.smarthost) || has(self.smarthost.tls) || !has(self.tls) || (self.tls != 'mta-sts' && self.tls != 'dane')",
              'delivery.tls mta-sts and dane apply to MX delivery; with a smarthost set smarthost.tls (none, opportunistic, required or verify)',
            ),
            cel(
              '!has(self.smarthost) || !has(self.destinations) || self.destinations.all(d, !has(d.tls))',
              'destinations[].tls applies to MX delivery; with a smarthost every message goes to it: set smarthost.tls',
            ),
            cel(
              // No string(int) here: its result has no size bound, and the API server refuses the rule's estimated cost.
              "!has(self.smarthost) || !has(self.destinations) || self.destinations.all(d, d.match == '*' || d.match == self.smarthost.host || (d.match.startsWith(self.smarthost.host + ':') && d.match.substring(size(self.smarthost.host) + 1).matches('^[0-9]{1,5}$') && int(d.match.substring(size(self.smarthost.host) + 1)) == (has(self.smarthost.port) ? self.smarthost.port : 25)))",
              'with a smarthost every message goes to it: destinations[].match must be "*" or the smarthost host (host or host:port)',
            ),
            cel(
              "has(self.smarthost) || !has(self.destinations) || self.destinations.all(d, !d.match.contains(':'))",
              'destinations[].match host:port names a smarthost; without one match a recipient domain, an MX host suffix or "*"',
            ),
          ],
        },
      ),
    ),
  },
  {
    ...strict,
    'x-kubernetes-validations': [
      cel(
        '(has(self.clients.networks) && size(self.clients.networks) > 0) || has(self.clients.authSecretRef) || has(self.api)',
        'clients needs networks or authSecretRef (or api.keysSecretRef for a policy used only by the HTTP API)',
      ),
    ],
  },
);
export type RelayPolicySpec = Static<typeof RelayPolicySpec>;

/** The event kinds a Webhook may subscribe to: mail events (MailEvent) and site events (SiteEvent). */
export const WEBHOOK_EVENTS = [
  'received',
  'delivered',
  'deferred',
  'bounced',
  'expired',
  'suppressed',
  'dsn',
  'site.throttled',
  'site.suspended',
  'site.resumed',
] as const;

/**
 * A signed HTTP endpoint told about events (docs/api.md "Webhooks"). Its own kind rather than a RelayPolicy
 * section: an endpoint follows site events and inbound mail that no policy owns, may follow several policies,
 * and is owned by the application team (RBAC on Webhooks) while RelayPolicies stay with the platform team.
 */
export const WebhookSpec = Type.Object(
  {
    /** Where events are POSTed. */
    url: Type.String({ pattern: '^https?://[^\\s/?#]+[^\\s]*$', maxLength: 2048 }),
    events: Type.Array(Type.Union(WEBHOOK_EVENTS.map((e) => Type.Literal(e))), { minItems: 1, maxItems: 20 }),
    /** Secret holding the HMAC-SHA256 key (key `secret` unless `key` says otherwise). */
    secretRef: SecretRef,
    /** Only mail events of messages relayed under these RelayPolicies (same namespace); site events pass. */
    policies: Type.Optional(
      Type.Array(Type.String({ pattern: '^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$' }), { maxItems: 100 }),
    ),
    /** One request's time limit (default 10s). */
    timeout: Type.Optional(Duration),
    /** How long an event is retried before it is dead-lettered (default 24h). */
    maxLifetime: Type.Optional(Duration),
    /** Backoff between attempts: doubling from initialDelay (default 10s) up to maxDelay (default 1h). */
    retry: Type.Optional(
      Type.Object({ initialDelay: Type.Optional(Duration), maxDelay: Type.Optional(Duration) }, strict),
    ),
  },
  strict,
);
export type WebhookSpec = Static<typeof WebhookSpec>;

/** A custom resource document as users write it (`kubectl apply` shape). */
export interface Resource<Spec> {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    generation?: number;
    uid?: string;
    creationTimestamp?: string;
  };
  spec: Spec;
}
export type MailDomain = Resource<MailDomainSpec>;
export type RelayPolicy = Resource<RelayPolicySpec>;
export type Webhook = Resource<WebhookSpec>;

/** The kinds, with their schemas, for generators and validators. */
export const KINDS: Record<
  string,
  { plural: string; singular: string; shortNames: string[]; spec: TSchema }
> = {
  MailDomain: { plural: 'maildomains', singular: 'maildomain', shortNames: ['md'], spec: MailDomainSpec },
  RelayPolicy: {
    plural: 'relaypolicies',
    singular: 'relaypolicy',
    shortNames: ['rp'],
    spec: RelayPolicySpec,
  },
  Webhook: { plural: 'webhooks', singular: 'webhook', shortNames: ['wh'], spec: WebhookSpec },
};
