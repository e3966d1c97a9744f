/**
 * The contracts between services: what travels on each JetStream stream.
 * Every service imports these; none re-declares them.
 */

/** Where a recipient's mail goes, decided by the queue at routing time. */
export type Route =
  /** Relay to the recipient domain's MX hosts (RFC 5321 §5). */
  | { kind: 'mx'; domain: string; tls: TlsMode }
  /** Relay through a smarthost named by the RelayPolicy. */
  | { kind: 'smarthost'; host: string; port: number; tls: TlsMode; auth?: { user: string; pass: string } }
  /** Hand inbound mail to the domain's mailbox store. */
  | { kind: 'mailbox'; host: string; port: number; protocol: 'lmtp' | 'smtp'; tls: TlsMode };

/**
 * TLS policy of a route (docs/delivery.md "TLS policy"). Never a silent downgrade: every mode but `none` and
 * `opportunistic` defers rather than send in clear text or to an unverified peer.
 * - none: never STARTTLS (smarthosts/mailboxes only).
 * - opportunistic: STARTTLS when offered, certificate not checked, clear text otherwise (RFC 7435).
 * - required: TLS or defer; certificate not checked.
 * - verify: required + a valid PKIX chain for the host name.
 * - mta-sts: the recipient domain's MTA-STS policy (RFC 8461); none published → opportunistic (MX routes only).
 * - dane: DNSSEC-authenticated TLSA records (RFC 7672); none → the mta-sts behaviour (MX routes only).
 */
export type TlsMode = 'none' | 'opportunistic' | 'required' | 'verify' | 'mta-sts' | 'dane';

/** RFC 8460 §4.3 result types (the TLS-RPT failure vocabulary), used for every TLS failure we report. */
export type TlsFailureType =
  | 'starttls-not-supported'
  | 'certificate-host-mismatch'
  | 'certificate-expired'
  | 'certificate-not-trusted'
  | 'validation-failure'
  | 'tlsa-invalid'
  | 'dnssec-invalid'
  | 'dane-required'
  | 'sts-policy-fetch-error'
  | 'sts-policy-invalid'
  | 'sts-webpki-invalid';

/** What one SMTP session's TLS was: travels in results, events, DSNs and `postern queue show`. */
export interface TlsFacts {
  /** The route's configured mode. */
  policy: TlsMode;
  /**
   * What that mode meant for this destination: `dane` (authenticated TLSA), `mta-sts-enforce`,
   * `mta-sts-testing`, or the mode itself (`opportunistic` also when mta-sts/dane found no policy).
   */
  applied: string;
  /** Negotiated protocol and cipher; absent when the session stayed in clear text. */
  version?: string;
  cipher?: string;
  /** The peer certificate was validated (PKIX for the host name, or a TLSA match for DANE). */
  verified: boolean;
  /** Why TLS failed or would have failed (testing policies deliver anyway and report it). */
  failure?: TlsFailureType;
  /** Human detail of the failure. */
  detail?: string;
}

/**
 * The message body (services/common/body-store.ts): inline (base64) when small, a message in the `BODIES`
 * stream (`stored` = message id) up to the server's max payload, else a name in the `bodies` object store.
 */
export type BodyRef =
  | { inline: string }
  | { stored: string; size: number }
  | { object: string; size: number };

/** Published by ingress on SUBMIT (`mail.submit.<shard>`) once per accepted message. */
export interface Envelope {
  id: string;
  /** Envelope sender; '' is the null sender `<>` (bounces). */
  from: string;
  to: string[];
  receivedAt: string;
  /** Name of the RelayPolicy that allowed relaying, when any recipient is relayed. */
  policy?: string;
  /** The client as seen by ingress (for Received and logs). */
  client: { address: string; helo: string; user?: string; tls: boolean };
  size: number;
  body: BodyRef;
  /** 'dsn' for bounces Postern generated itself: never bounced again (no bounce loops). */
  kind?: 'mail' | 'dsn';
  smtputf8?: boolean;
}

/** Retry settings carried with each job so delivery and queue agree without a config lookup. */
export interface RetryPolicy {
  /** Delays in ms between attempts; the last repeats. */
  scheduleMs: number[];
  /** A recipient not delivered this long after receipt expires (bounced). */
  maxLifetimeMs: number;
}

/** Published by the queue on OUTBOUND (`mail.out.<pool>.<destination>`): one per message × destination. */
export interface DeliveryJob {
  /** `<messageId>.<destination index>`: stable across retries. */
  jobId: string;
  messageId: string;
  attempt: number;
  from: string;
  recipients: string[];
  route: Route;
  pool: string;
  body: BodyRef;
  receivedAt: string;
  expiresAt: string;
  retry: RetryPolicy;
  kind: 'mail' | 'dsn';
  /**
   * The RelayPolicy that routed the job (`<namespace>/<name>`): delivery reads its `destinations[]` limits from
   * the live config. Absent for mail no policy relayed (inbound, DSNs).
   */
  policy?: string;
  /**
   * Set by delivery on a job it re-scheduled because its site was at a limit (never an attempt): how often it
   * waited (for backoff) and the message token it reserved at the site, due at `at` (ms since epoch).
   */
  siteWait?: { waits: number; token?: { site: string; at: number } };
  /** DKIM signing key for the sender domain, when it has one. */
  dkim?: { domain: string; selector: string; privateKey: string };
}

/** Per-recipient result of one attempt. */
export interface RecipientOutcome {
  recipient: string;
  status: 'delivered' | 'deferred' | 'failed';
  /** Remote reply (e.g. "550 5.1.1 No such user") or local reason. */
  response: string;
  /** Enhanced status code when known (RFC 3463). */
  enhanced?: string;
  remoteMta?: string;
  /** TLS of the session the outcome came from (or of the failed attempt to get one). */
  tls?: TlsFacts;
}

/**
 * Published by delivery on RESULTS (`mail.result.<pool>`) after every attempt. The job travels back without its
 * body: the queue keeps the body reference in its message state.
 */
export interface DeliveryResult {
  job: Omit<DeliveryJob, 'body'>;
  outcomes: RecipientOutcome[];
  attemptedAt: string;
  durationMs: number;
}

export type EventKind = 'received' | 'delivered' | 'deferred' | 'bounced' | 'expired' | 'suppressed' | 'dsn';

/** Published on EVENTS (`mail.event.<kind>`): the audit trail and the source for metrics and webhooks. */
export interface MailEvent {
  kind: EventKind;
  messageId: string;
  at: string;
  from?: string;
  recipients?: string[];
  response?: string;
  attempt?: number;
  pool?: string;
  tls?: TlsFacts;
}
