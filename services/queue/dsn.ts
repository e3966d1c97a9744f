/**
 * RFC 3464 delivery status notifications: the bounce Postern sends to an envelope sender when recipients fail
 * permanently, expire or are suppressed, and the RFC 3461 delay warnings and success notices senders ask for.
 * A pure builder: callers supply the original's header section (or the whole message for RET=FULL).
 * Lines end in CRLF (RFC 5322 §2.1) because the DSN re-enters the pipeline like any submitted message.
 */
import { createHash } from 'node:crypto';
import { tlsSummary } from '../common/tls-summary.ts';
import type { DsnAction, Envelope, TlsFacts } from '../common/types.ts';

/** One recipient's line in a DSN. */
export interface DsnRecipient {
  recipient: string;
  /** RFC 3464 §2.3.4 Status, e.g. "5.1.1", or "4.4.7" for expiry. */
  status: string;
  /** What is reported: the human text and the Action field (failed for the first three) say so. */
  reason: 'failed' | 'expired' | 'suppressed' | 'delayed' | 'delivered' | 'relayed';
  /** RFC 3461 ORCPT, decoded (`type;address`): reported as Original-Recipient. */
  orcpt?: string;
  /** Delayed: the message expires then (RFC 3464 §2.3.8 Will-Retry-Until). */
  willRetryUntil?: string;
  /** Last remote reply (or local reason). */
  diagnostic?: string;
  remoteMta?: string;
  lastAttemptAt?: string;
  /** TLS of the last attempt (what was negotiated, which policy applied, why it failed). */
  tls?: TlsFacts;
}

export interface DsnInput {
  /** Envelope id of the DSN itself (also its Message-ID local part). */
  id: string;
  /** Reporting-MTA and MAILER-DAEMON domain. */
  hostname: string;
  original: { id: string; from: string; receivedAt: string; kind?: 'mail' | 'dsn' };
  /** The original message's header section (up to the blank line), if still readable. */
  originalHeaders?: string;
  /** The whole original message (RET=FULL on a failure DSN): returned as message/rfc822 instead of headers. */
  originalMessage?: string;
  /** RFC 3461 ENVID, decoded: reported as Original-Envelope-Id (RFC 3464 §2.2.1). */
  envid?: string;
  recipients: DsnRecipient[];
  now: Date;
}

/**
 * Whether a DSN may be sent for this message: never to the null sender `<>` and never for a DSN
 * (RFC 3464 §2 / RFC 5321 §4.5.5: bounces of bounces loop).
 */
export function mayBounce(original: { from: string; kind?: 'mail' | 'dsn' }): boolean {
  return original.from !== '' && original.kind !== 'dsn';
}

const REASON_TEXT: Record<DsnRecipient['reason'], string> = {
  failed: 'delivery failed permanently',
  expired: 'delivery was deferred until the message expired (maximum lifetime reached)',
  suppressed: 'not attempted: the address hard-bounced recently and is suppressed',
  delayed: 'delivery temporarily suspended; the mail system will keep trying',
  delivered: 'delivery successful',
  relayed: 'delivered to the next mail system, which does not send delivery notifications',
};

/** RFC 3464 §2.3.3 Action of a recipient line. */
export function actionOf(reason: DsnRecipient['reason']): DsnAction {
  return reason === 'delayed' || reason === 'delivered' || reason === 'relayed' ? reason : 'failed';
}

/** What a whole DSN reports: failure if any recipient failed, else a delay warning, else a success notice. */
export function dsnKind(recipients: DsnRecipient[]): 'failure' | 'delay' | 'success' {
  const actions = recipients.map((r) => actionOf(r.reason));
  if (actions.includes('failed')) return 'failure';
  return actions.includes('delayed') ? 'delay' : 'success';
}

const SUBJECT = {
  failure: 'Undelivered Mail Returned to Sender',
  delay: 'Delayed Mail (still being retried)',
  success: 'Successful Mail Delivery Report',
} as const;

const INTRO = {
  failure: [
    "I'm sorry to have to inform you that your message could not",
    'be delivered to one or more recipients.',
  ],
  delay: [
    'This is a warning only: you do not need to resend your message.',
    'Delivery to the following recipients has been delayed; the mail',
    'system will keep trying until the message expires.',
  ],
  success: [
    'Your message was delivered to the destinations listed below.',
    'A destination marked "relayed" does not send notifications itself:',
    'you may still hear about delivery errors from systems further on.',
  ],
} as const;

/** Strips CR/LF so a remote reply fits one header field and cannot inject lines. */
function oneLine(text: string, max = 900): string {
  return text
    .replace(/[\r\n]+/g, ' ')
    .trim()
    .slice(0, max);
}

/** RFC 5322 date-time, as Date.toUTCString gives it with a numeric zone. */
function rfc5322Date(d: Date): string {
  return d.toUTCString().replace('GMT', '+0000');
}

/** RFC 3464 §2.3.2 address type: rfc822, or utf-8 (RFC 6533) for internationalised addresses. */
function addressField(address: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ASCII range check
  return /^[\x00-\x7f]*$/.test(address) ? `rfc822; ${address}` : `utf-8; ${address}`;
}

/** RFC 3464 §2.3.1 original-recipient: `type; address`, one line. */
function orcptField(orcpt: string): string {
  const semi = orcpt.indexOf(';');
  return oneLine(`${orcpt.slice(0, semi)}; ${orcpt.slice(semi + 1)}`, 500);
}

/** The header section of a message: everything before the first empty line. */
export function headerSection(message: Uint8Array | string): string {
  const text = typeof message === 'string' ? message : Buffer.from(message).toString('utf8');
  const end = text.search(/\r?\n\r?\n/);
  return (end < 0 ? text : text.slice(0, end)).replace(/\r?\n/g, '\r\n');
}

/** Builds the full DSN message (headers + multipart/report body). */
export function buildDsn(input: DsnInput): string {
  const { hostname, original, recipients, now } = input;
  const boundary = `=_postern_${createHash('sha256').update(input.id).digest('hex').slice(0, 24)}`;
  const kind = dsnKind(recipients);
  const anyTemporary = recipients.every((r) => r.reason === 'expired');
  const subject = kind === 'failure' && anyTemporary ? `${SUBJECT.failure} (expired)` : SUBJECT[kind];
  // RFC 3461 §4.3: RET applies only to DSNs that report a failure; the others carry headers only.
  const full = kind === 'failure' ? input.originalMessage : undefined;
  const human = [
    `This is the mail system at host ${hostname}.`,
    '',
    ...INTRO[kind],
    '',
    ...recipients.flatMap((r) => [
      `<${r.recipient}>: ${REASON_TEXT[r.reason]}`,
      ...(r.diagnostic ? [`    ${r.remoteMta ? `${r.remoteMta} said: ` : ''}${oneLine(r.diagnostic)}`] : []),
      ...(r.tls ? [`    TLS: ${tlsSummary(r.tls)}`] : []),
      '',
    ]),
  ];
  const perMessage = [
    `Reporting-MTA: dns; ${hostname}`,
    // RFC 3464 §2.2.1: the ENVID the sender gave, so it can match the report to what it sent.
    ...(input.envid !== undefined ? [`Original-Envelope-Id: ${oneLine(input.envid, 100)}`] : []),
    `X-Postern-Queue-ID: ${original.id}`,
    `Arrival-Date: ${rfc5322Date(new Date(original.receivedAt))}`,
  ];
  const perRecipient = recipients.map((r) =>
    [
      // RFC 3464 §2.3.1: the ORCPT the sender gave, as given (address type; address).
      ...(r.orcpt ? [`Original-Recipient: ${orcptField(r.orcpt)}`] : []),
      `Final-Recipient: ${addressField(r.recipient)}`,
      `Action: ${actionOf(r.reason)}`,
      `Status: ${r.status}`,
      ...(r.remoteMta ? [`Remote-MTA: dns; ${r.remoteMta}`] : []),
      ...(r.diagnostic
        ? [`Diagnostic-Code: ${r.reason === 'suppressed' ? 'x-postern' : 'smtp'}; ${oneLine(r.diagnostic)}`]
        : []),
      ...(r.lastAttemptAt ? [`Last-Attempt-Date: ${rfc5322Date(new Date(r.lastAttemptAt))}`] : []),
      ...(r.willRetryUntil ? [`Will-Retry-Until: ${rfc5322Date(new Date(r.willRetryUntil))}`] : []),
      // RFC 3464 §2.4 extension field.
      ...(r.tls ? [`X-Postern-TLS: ${oneLine(tlsSummary(r.tls))}`] : []),
    ].join('\r\n'),
  );
  const lines = [
    `From: Mail Delivery System <MAILER-DAEMON@${hostname}>`,
    `To: <${original.from}>`,
    `Subject: ${subject}`,
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <${input.id}@${hostname}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    ...human,
    `--${boundary}`,
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    '',
    ...perMessage,
    '',
    ...perRecipient.flatMap((block) => [block, '']),
    `--${boundary}`,
    ...(full !== undefined
      ? ['Content-Description: Undelivered Message', 'Content-Type: message/rfc822']
      : [
          `Content-Description: ${kind === 'failure' ? 'Undelivered Message Headers' : 'Message Headers'}`,
          'Content-Type: text/rfc822-headers',
        ]),
    'Content-Transfer-Encoding: 8bit',
    '',
    full !== undefined
      ? full.replace(/\r?\n/g, '\r\n').replace(/\r\n$/, '')
      : (input.originalHeaders ??
        `X-Postern-Note: the original message (${original.id}) is no longer available`),
    '',
    `--${boundary}--`,
    '',
  ];
  return lines.join('\r\n');
}

/**
 * The DSN as a submission: null sender, kind 'dsn', to the original envelope sender; its body travels attached
 * (`raw`, body-wire.ts).
 */
export function dsnEnvelope(input: DsnInput, message: string): { envelope: Envelope; raw: Buffer } {
  const raw = Buffer.from(message, 'utf8');
  const envelope: Envelope = {
    id: input.id,
    from: '',
    to: [input.original.from],
    receivedAt: input.now.toISOString(),
    client: { address: '127.0.0.1', helo: input.hostname, tls: false },
    size: raw.length,
    body: { attached: raw.length },
    kind: 'dsn',
  };
  return { envelope, raw };
}
