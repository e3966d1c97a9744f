/**
 * The trace header every SMTP server must prepend (RFC 5321 §4.4): who sent it (HELO name, address), who
 * received it, with which protocol (RFC 3848: ESMTP, ESMTPS with TLS, ESMTPSA with TLS + AUTH), the id and
 * the time. TLS details in a comment as Postfix writes them.
 */

export interface ReceivedInfo {
  helo: string;
  clientAddress: string;
  hostname: string;
  id: string;
  /** e.g. "ESMTPSA" (smtp-server's session.transmissionType follows RFC 3848). */
  protocol: string;
  tls?: { version: string; cipher: string };
  /** Named only for a single recipient: listing all would disclose Bcc recipients. */
  recipient?: string;
  date: Date;
}

/** Header text must not let a client inject a line break or anything outside printable ASCII. */
function clean(text: string): string {
  return text.replace(/[^\x21-\x7e]/g, '?').slice(0, 255);
}

/** RFC 5322 §3.3 date-time with a numeric zone. */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

/** The full header field, folded, ending in CRLF. */
export function receivedHeader(r: ReceivedInfo): string {
  const lines = [
    `Received: from ${clean(r.helo || 'unknown')} ([${clean(r.clientAddress)}])`,
    `\tby ${clean(r.hostname)} (Postern) with ${clean(r.protocol)} id ${r.id}`,
  ];
  if (r.tls) lines.push(`\t(using ${clean(r.tls.version)} with cipher ${clean(r.tls.cipher)})`);
  if (r.recipient) lines.push(`\tfor <${clean(r.recipient)}>`);
  lines[lines.length - 1] += `; ${rfc5322Date(r.date)}`;
  return `${lines.join('\r\n')}\r\n`;
}
