/**
 * RFC 3464 delivery status notifications: the bounce Postern sends to an envelope sender when recipients fail
 * permanently, expire or are suppressed. A pure builder: callers supply the original's header section.
 * Lines end in CRLF (RFC 5322 §2.1) because the DSN re-enters the pipeline like any submitted message.
 */
import { createHash } from 'node:crypto';
import { tlsSummary } from '../common/tls-summary.ts';
import type { Envelope, TlsFacts } from '../common/types.ts';

/** One recipient's line in a DSN. */
export interface DsnRecipient {
  recipient: string;
  /** RFC 3464 §2.3.4 Status, e.g. "5.1.1", or "4.4.7" for expiry. */
  status: string;
  /** Why it is final: the human text says so. */
  reason: 'failed' | 'expired' | 'suppressed';
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
};

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
  const anyTemporary = recipients.every((r) => r.reason === 'expired');
  const human = [
    `This is the mail system at host ${hostname}.`,
    '',
    "I'm sorry to have to inform you that your message could not",
    'be delivered to one or more recipients.',
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
    `X-Postern-Queue-ID: ${original.id}`,
    `Arrival-Date: ${rfc5322Date(new Date(original.receivedAt))}`,
  ];
  const perRecipient = recipients.map((r) =>
    [
      `Final-Recipient: ${addressField(r.recipient)}`,
      'Action: failed',
      `Status: ${r.status}`,
      ...(r.remoteMta ? [`Remote-MTA: dns; ${r.remoteMta}`] : []),
      ...(r.diagnostic
        ? [`Diagnostic-Code: ${r.reason === 'suppressed' ? 'x-postern' : 'smtp'}; ${oneLine(r.diagnostic)}`]
        : []),
      ...(r.lastAttemptAt ? [`Last-Attempt-Date: ${rfc5322Date(new Date(r.lastAttemptAt))}`] : []),
      // RFC 3464 §2.4 extension field.
      ...(r.tls ? [`X-Postern-TLS: ${oneLine(tlsSummary(r.tls))}`] : []),
    ].join('\r\n'),
  );
  const lines = [
    `From: Mail Delivery System <MAILER-DAEMON@${hostname}>`,
    `To: <${original.from}>`,
    `Subject: ${anyTemporary ? 'Undelivered Mail Returned to Sender (expired)' : 'Undelivered Mail Returned to Sender'}`,
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
    'Content-Description: Undelivered Message Headers',
    'Content-Type: text/rfc822-headers',
    'Content-Transfer-Encoding: 8bit',
    '',
    input.originalHeaders ?? `X-Postern-Note: the original message (${original.id}) is no longer available`,
    '',
    `--${boundary}--`,
    '',
  ];
  return lines.join('\r\n');
}

/** The DSN as a submission: null sender, kind 'dsn', body inline, to the original envelope sender. */
export function dsnEnvelope(input: DsnInput, message: string): Envelope {
  const raw = Buffer.from(message, 'utf8');
  return {
    id: input.id,
    from: '',
    to: [input.original.from],
    receivedAt: input.now.toISOString(),
    client: { address: '127.0.0.1', helo: input.hostname, tls: false },
    size: raw.length,
    body: { inline: raw.toString('base64') },
    kind: 'dsn',
  };
}
