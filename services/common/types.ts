/**
 * The contracts between services: what travels on each JetStream stream, as TypeBox schemas with their `Static`
 * types (one definition for the type and the run-time check, like the CRD specs in config/schema.ts). Every
 * service imports these; none re-declares them. Consumers validate what they read with the compiled checks in
 * contracts.ts; a message that fails is terminated with a log line naming the first wrong field.
 *
 * `v` is the contract version. Producers write `CONTRACT_VERSION`; a message without `v` is read as version 1 (what
 * was in flight before the field existed). A change that old readers cannot take raises the version, and keeps the
 * JSON (payload, or the body-wire header) readable far enough to find `v`: a reader handed a later version naks it
 * for an upgraded replica instead of terminating it (contracts.ts NewerContractError, consume.ts).
 */
import { type Static, Type } from '@sinclair/typebox';
import type { Sealed } from './secrets.ts';

export const CONTRACT_VERSION = 1;
const Version = Type.Optional(Type.Literal(CONTRACT_VERSION));

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
export const TlsMode = Type.Union([
  Type.Literal('none'),
  Type.Literal('opportunistic'),
  Type.Literal('required'),
  Type.Literal('verify'),
  Type.Literal('mta-sts'),
  Type.Literal('dane'),
]);
export type TlsMode = Static<typeof TlsMode>;

/** RFC 8460 §4.3 result types (the TLS-RPT failure vocabulary), used for every TLS failure we report. */
export const TlsFailureType = Type.Union([
  Type.Literal('starttls-not-supported'),
  Type.Literal('certificate-host-mismatch'),
  Type.Literal('certificate-expired'),
  Type.Literal('certificate-not-trusted'),
  Type.Literal('validation-failure'),
  Type.Literal('tlsa-invalid'),
  Type.Literal('dnssec-invalid'),
  Type.Literal('dane-required'),
  Type.Literal('sts-policy-fetch-error'),
  Type.Literal('sts-policy-invalid'),
  Type.Literal('sts-webpki-invalid'),
]);
export type TlsFailureType = Static<typeof TlsFailureType>;

/** What one SMTP session's TLS was: travels in results, events, DSNs and `postern queue show`. */
export const TlsFacts = Type.Object({
  /** The route's configured mode. */
  policy: TlsMode,
  /**
   * What that mode meant for this destination: `dane` (authenticated TLSA), `mta-sts-enforce`,
   * `mta-sts-testing`, or the mode itself (`opportunistic` also when mta-sts/dane found no policy).
   */
  applied: Type.String(),
  /** Negotiated protocol and cipher; absent when the session stayed in clear text. */
  version: Type.Optional(Type.String()),
  cipher: Type.Optional(Type.String()),
  /** The peer certificate was validated (PKIX for the host name, or a TLSA match for DANE). */
  verified: Type.Boolean(),
  /** Why TLS failed or would have failed (testing policies deliver anyway and report it). */
  failure: Type.Optional(TlsFailureType),
  /** Human detail of the failure. */
  detail: Type.Optional(Type.String()),
});
export type TlsFacts = Static<typeof TlsFacts>;

/**
 * A secret sealed by services/common/secrets.ts (`sealed:v1:…`); only delivery opens it. Statically a `Sealed`, so
 * a plain string cannot be put there by mistake. Not pattern-checked at run time: a job queued by a version before
 * sealing still validates, and delivery uses such a legacy clear-text value as it is (docs/secrets.md).
 */
export const SealedText = Type.Unsafe<Sealed>(Type.String());

/**
 * Smarthost credentials: the password sealed for `SECRET_CONTEXT.smarthostPassword(host, port, user)`; delivery
 * opens it just before AUTH.
 */
export const SmarthostAuth = Type.Object({ user: Type.String(), pass: SealedText });
export type SmarthostAuth = Static<typeof SmarthostAuth>;

/** Where a recipient's mail goes, decided by the queue at routing time. */
export const Route = Type.Union([
  /** Relay to the recipient domain's MX hosts (RFC 5321 §5). */
  Type.Object({ kind: Type.Literal('mx'), domain: Type.String(), tls: TlsMode }),
  /** Relay through a smarthost named by the RelayPolicy. */
  Type.Object({
    kind: Type.Literal('smarthost'),
    host: Type.String(),
    port: Type.Integer(),
    tls: TlsMode,
    auth: Type.Optional(SmarthostAuth),
  }),
  /** Hand inbound mail to the domain's mailbox store. */
  Type.Object({
    kind: Type.Literal('mailbox'),
    host: Type.String(),
    port: Type.Integer(),
    protocol: Type.Union([Type.Literal('lmtp'), Type.Literal('smtp')]),
    tls: TlsMode,
  }),
]);
export type Route = Static<typeof Route>;

/**
 * The message body (services/common/body-store.ts): attached when small (its raw bytes travel beside the contract
 * that names it — the payload of its NATS message, body-wire.ts, or the tail of the queue's state entry, state.ts;
 * `attached` = its size), a message in the `BODIES` stream (`stored` = message id) up to the server's max payload,
 * else a name in the `bodies` object store. `inline` (base64 in the JSON) is how releases before 2026-11-27 carried
 * small bodies: still read, never written.
 */
export const BodyRef = Type.Union([
  Type.Object({ attached: Type.Integer({ minimum: 0 }) }),
  Type.Object({ inline: Type.String() }),
  Type.Object({ stored: Type.String(), size: Type.Integer() }),
  Type.Object({ object: Type.String(), size: Type.Integer() }),
]);
export type BodyRef = Static<typeof BodyRef>;

const MessageKind = Type.Union([Type.Literal('mail'), Type.Literal('dsn')]);

/** RFC 3461 §4.1 NOTIFY values of one recipient; NEVER stands alone. */
export const DsnNotify = Type.Union([
  Type.Literal('SUCCESS'),
  Type.Literal('FAILURE'),
  Type.Literal('DELAY'),
  Type.Literal('NEVER'),
]);
export type DsnNotify = Static<typeof DsnNotify>;

/** RFC 3461 §4.1/§4.2 RCPT parameters of one recipient. */
export const RecipientDsn = Type.Object({
  /** Absent: the client gave no NOTIFY (failures only, like before DSN support). */
  notify: Type.Optional(Type.Array(DsnNotify, { minItems: 1 })),
  /** ORCPT, xtext-decoded: `<addr-type>;<address>`, e.g. `rfc822;alice@example.org`. */
  orcpt: Type.Optional(Type.String()),
});
export type RecipientDsn = Static<typeof RecipientDsn>;

/**
 * The RFC 3461 DSN parameters a client gave (docs/ingress.md "Delivery status notifications"), carried from
 * ingress through the queue to delivery, which passes them on to next hops that advertise DSN.
 */
export const DsnParams = Type.Object({
  /** MAIL RET: return the full message or only its headers in a failure DSN (RFC 3461 §4.3). */
  ret: Type.Optional(Type.Union([Type.Literal('FULL'), Type.Literal('HDRS')])),
  /** MAIL ENVID, xtext-decoded (RFC 3461 §4.4): reported back as Original-Envelope-Id. */
  envid: Type.Optional(Type.String()),
  /** RCPT NOTIFY/ORCPT by recipient address (as in `to` / `recipients`); recipients without any are absent. */
  recipients: Type.Optional(Type.Record(Type.String(), RecipientDsn)),
});
export type DsnParams = Static<typeof DsnParams>;

/** Published by ingress on SUBMIT (`mail.submit.<shard>`) once per accepted message. */
export const Envelope = Type.Object({
  v: Version,
  id: Type.String({ minLength: 1 }),
  /** Envelope sender; '' is the null sender `<>` (bounces). */
  from: Type.String(),
  to: Type.Array(Type.String(), { minItems: 1 }),
  receivedAt: Type.String({ minLength: 1 }),
  /** Name of the RelayPolicy that allowed relaying, when any recipient is relayed. */
  policy: Type.Optional(Type.String()),
  /** The client as seen by ingress (for Received and logs). */
  client: Type.Object({
    address: Type.String(),
    helo: Type.String(),
    user: Type.Optional(Type.String()),
    tls: Type.Boolean(),
  }),
  size: Type.Integer({ minimum: 0 }),
  body: BodyRef,
  /** 'dsn' for bounces Postern generated itself: never bounced again (no bounce loops). */
  kind: Type.Optional(MessageKind),
  smtputf8: Type.Optional(Type.Boolean()),
  /** RFC 3461 parameters, when the client gave any. */
  dsn: Type.Optional(DsnParams),
  /**
   * Set by ingress when local policy quarantines the message (a DMARC p=quarantine failure under
   * `quarantine: hold`): why. The queue keeps every job on hold until an operator releases (or deletes) it.
   */
  hold: Type.Optional(Type.String()),
});
export type Envelope = Static<typeof Envelope>;

/** Retry settings carried with each job so delivery and queue agree without a config lookup. */
export const RetryPolicy = Type.Object({
  /** Delays in ms between attempts; the last repeats. */
  scheduleMs: Type.Array(Type.Number({ minimum: 0 })),
  /** A recipient not delivered this long after receipt expires (bounced). */
  maxLifetimeMs: Type.Number({ minimum: 0 }),
  /**
   * NOTIFY=DELAY recipients still queued this long after receipt get one delay warning (Postfix's
   * delay_warning_time); absent = the default, 4 h.
   */
  delayWarningMs: Type.Optional(Type.Number({ minimum: 0 })),
});
export type RetryPolicy = Static<typeof RetryPolicy>;

/** A job as the queue stores and delivery reports it: everything but the body. */
const JobFields = {
  v: Version,
  /** `<messageId>.<destination index>`: stable across retries. */
  jobId: Type.String({ minLength: 1 }),
  messageId: Type.String({ minLength: 1 }),
  attempt: Type.Integer({ minimum: 1 }),
  from: Type.String(),
  recipients: Type.Array(Type.String(), { minItems: 1 }),
  route: Route,
  pool: Type.String(),
  receivedAt: Type.String(),
  expiresAt: Type.String(),
  retry: RetryPolicy,
  kind: MessageKind,
  /**
   * The RelayPolicy that routed the job (`<namespace>/<name>`): delivery reads its `destinations[]` limits from
   * the live config. Absent for mail no policy relayed (inbound, DSNs).
   */
  policy: Type.Optional(Type.String()),
  /**
   * Set by delivery on a job it re-scheduled because its site was at a limit (never an attempt): how often it
   * waited (for backoff) and the message token it reserved at the site, due at `at` (ms since epoch).
   */
  siteWait: Type.Optional(
    Type.Object({
      waits: Type.Integer({ minimum: 0 }),
      token: Type.Optional(Type.Object({ site: Type.String(), at: Type.Number() })),
    }),
  ),
  /** DKIM signing key for the sender domain, when it has one; sealed (services/common/secrets.ts), delivery opens it. */
  dkim: Type.Optional(
    Type.Object({ domain: Type.String(), selector: Type.String(), privateKey: SealedText }),
  ),
  /** The message's RFC 3461 parameters, narrowed to this job's recipients: passed on to a next hop with DSN. */
  dsn: Type.Optional(DsnParams),
  /** A delay warning (RFC 3464 Action: delayed) was sent for this job's recipients: never a second one. */
  delayWarned: Type.Optional(Type.Boolean()),
  /**
   * Routed at receipt (services/common/submit.ts, the lean path): the job went straight to OUTBOUND and the queue
   * holds no state for its message. Delivery settles an attempt that delivered every recipient itself (events,
   * body); any other result goes to RESULTS with the body, and the queue adopts the message (lifecycle.ts).
   * Only the first attempt of a single-destination message without DSN requests or hold is direct.
   */
  direct: Type.Optional(Type.Boolean()),
};

/**
 * Published on OUTBOUND (`mail.out.<pool>.<destination>`): one per message × destination, by the queue, or by
 * ingress and the API for a direct job.
 */
export const DeliveryJob = Type.Object({ ...JobFields, body: BodyRef });
export type DeliveryJob = Static<typeof DeliveryJob>;

/** Per-recipient result of one attempt. */
export const RecipientOutcome = Type.Object({
  recipient: Type.String(),
  status: Type.Union([Type.Literal('delivered'), Type.Literal('deferred'), Type.Literal('failed')]),
  /** Remote reply (e.g. "550 5.1.1 No such user") or local reason. */
  response: Type.String(),
  /** Enhanced status code when known (RFC 3463). */
  enhanced: Type.Optional(Type.String()),
  remoteMta: Type.Optional(Type.String()),
  /** TLS of the session the outcome came from (or of the failed attempt to get one). */
  tls: Type.Optional(TlsFacts),
  /**
   * The next hop advertised DSN in its EHLO/LHLO: the job's RFC 3461 parameters were passed on, and success
   * notices are its to send (RFC 3461 §5.2.1). False: they were dropped (§5.2.2). Absent: no session.
   */
  peerDsn: Type.Optional(Type.Boolean()),
});
export type RecipientOutcome = Static<typeof RecipientOutcome>;

/**
 * Published by delivery on RESULTS (`mail.result.<pool>`) after every attempt. The job travels back without its
 * body: the queue keeps the body reference in its message state.
 */
export const DeliveryResult = Type.Object({
  v: Version,
  job: Type.Object(JobFields),
  outcomes: Type.Array(RecipientOutcome),
  attemptedAt: Type.String(),
  durationMs: Type.Number({ minimum: 0 }),
  /** A direct job's body: the queue has no state holding it and needs it to retry, hold or bounce the message. */
  body: Type.Optional(BodyRef),
});
export type DeliveryResult = Static<typeof DeliveryResult>;

export const EventKind = Type.Union([
  Type.Literal('received'),
  Type.Literal('delivered'),
  Type.Literal('deferred'),
  Type.Literal('bounced'),
  Type.Literal('expired'),
  Type.Literal('suppressed'),
  Type.Literal('dsn'),
]);
export type EventKind = Static<typeof EventKind>;

/** RFC 3464 §2.3.3 actions Postern reports. */
export const DsnAction = Type.Union([
  Type.Literal('failed'),
  Type.Literal('delayed'),
  Type.Literal('delivered'),
  Type.Literal('relayed'),
]);
export type DsnAction = Static<typeof DsnAction>;

/** Published on EVENTS (`mail.event.<kind>`): the audit trail and the source for metrics and webhooks. */
export const MailEvent = Type.Object({
  v: Version,
  kind: EventKind,
  messageId: Type.String(),
  at: Type.String(),
  from: Type.Optional(Type.String()),
  recipients: Type.Optional(Type.Array(Type.String())),
  response: Type.Optional(Type.String()),
  attempt: Type.Optional(Type.Integer()),
  pool: Type.Optional(Type.String()),
  /** The RelayPolicy (`<namespace>/<name>`) the message was relayed under; webhooks filter on it. */
  policy: Type.Optional(Type.String()),
  tls: Type.Optional(TlsFacts),
  /** Kind `dsn`: what the notification reports (RFC 3464 §2.3.3 Action). */
  action: Type.Optional(DsnAction),
});
export type MailEvent = Static<typeof MailEvent>;
