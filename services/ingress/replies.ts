/**
 * Every SMTP reply the ingress composes itself, in one table: code (RFC 5321 §4.2), enhanced status code
 * (RFC 3463) and text. Replies smtp-server builds on its own (500 unknown command, 503 bad sequence, 538 …)
 * keep the library's wording.
 */

export interface SmtpReply {
  code: number;
  /** RFC 3463 enhanced status code, e.g. "5.7.1". */
  enhanced: string;
  text: string;
}

const reply = (code: number, enhanced: string, text: string): SmtpReply => ({ code, enhanced, text });

export const REPLIES = {
  /** RFC 5321 §3.5.3: VRFY may answer 252 without verifying anything; disclosing users helps harvesters. */
  vrfy: reply(252, '2.1.5', 'Cannot VRFY user, but will accept message and attempt delivery'),
  /** RFC 5321 §3.5.2: EXPN may be disabled; mailing-list expansion is not ours to disclose. */
  expn: reply(502, '5.5.1', 'EXPN command not implemented'),
  /** RFC 3463 §3.2: 5.1.7 bad sender mailbox syntax. */
  badSender: reply(501, '5.1.7', 'Bad sender address syntax'),
  /** RFC 3463 §3.2: 5.1.3 bad destination mailbox address syntax (also source routes, %, !, quoting). */
  badRecipient: reply(501, '5.1.3', 'Bad recipient address syntax'),
  unknownUser: reply(550, '5.1.1', 'Recipient address rejected: User unknown'),
  relayDenied: reply(554, '5.7.1', 'Relay access denied'),
  /** RFC 3463 §3.6: 4.5.3 too many recipients; 452 so the client retries the rest in another transaction. */
  tooManyRecipients: reply(452, '4.5.3', 'Too many recipients'),
  /** RFC 3463 §3.8: 4.7.1 delivery not authorized (temporarily): per-client message rate. */
  rateLimited: reply(450, '4.7.1', 'Too many messages from this client, slow down'),
  /** RFC 1870 §6 + RFC 3463 §3.4: 552 5.3.4 message too big for system. */
  tooBig: reply(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
  /** SMTP smuggling defence: RFC 5321 §2.3.8 allows only CRLF as line ending. */
  bareLineEnding: reply(550, '5.6.0', 'Bare LF/CR not allowed'),
  tempFail: reply(451, '4.3.0', 'Temporary failure, try again later'),
  authRequired: reply(530, '5.7.0', 'Authentication required'),
  authFailed: reply(535, '5.7.8', 'Authentication credentials invalid'),
  // Abuse limits (session-limits.ts, auth-lockout.ts); 421 closes the session (RFC 5321 §3.8).
  /** RFC 3463 §3.8: 4.7.0 security or policy status — Postfix's anvil reply for the per-client limit. */
  tooManyConnectionsFromIp: reply(421, '4.7.0', 'Too many connections from your address, try again later'),
  /** Postfix anvil's smtpd_client_connection_rate_limit: same status, the rate named. */
  connectionRateLimited: reply(
    421,
    '4.7.0',
    'Too many connections from your address per minute, try again later',
  ),
  /** RFC 3463 §3.5: 4.3.2 system not accepting network messages. */
  tooManyConnections: reply(421, '4.3.2', 'Too many connections, try again later'),
  /** RFC 3463 §3.5: 4.4.2 bad connection — Postfix's smtpd_timeout reply. */
  idleTimeout: reply(421, '4.4.2', 'Error: timeout exceeded'),
  commandTimeout: reply(421, '4.4.2', 'Error: command line not completed in time'),
  sessionTimeout: reply(421, '4.4.2', 'Error: session time limit exceeded'),
  /** Postfix smtpd_hard_error_limit. */
  tooManyErrors: reply(421, '4.7.0', 'Error: too many errors'),
  /** Postfix smtpd_junk_command_limit (NOOP, VRFY, RSET, … without AUTH). */
  tooManyJunkCommands: reply(421, '4.7.0', 'Error: too many junk commands'),
  tooManyUnauthenticatedCommands: reply(421, '4.7.0', 'Error: too many commands without authentication'),
  /** RFC 4954 §6: 454 4.7.0 temporary authentication failure; the session stays open. */
  authLockedOut: reply(454, '4.7.0', 'Too many failed authentications, try again later'),
  /** RFC 7489 §6.3 / RFC 9989: the author domain asks receivers to reject mail failing DMARC; RFC 3463 5.7.1. */
  dmarcReject: (domain: string) =>
    reply(550, '5.7.1', `Message rejected: it fails the DMARC policy of ${domain} (p=reject)`),
  /** RFC 7372 §3.2: X.7.23 SPF validation failed (the domain's SPF record ends in -all and did not match). */
  spfFail: (domain: string, ip: string) =>
    reply(
      550,
      '5.7.23',
      `Message rejected: the SPF record of ${domain} does not permit ${ip} to send for it`,
    ),
  /** Postfix's reject_rbl_client wording; RFC 3463 §3.8: 5.7.1 delivery not authorized. */
  dnsblListed: (ip: string, zone: string) =>
    reply(554, '5.7.1', `Service unavailable; client [${ip}] blocked using ${zone}`),
  /** Content filter (rspamd) verdicts at end of DATA (content-filter.ts). */
  contentRejected: (text: string) => reply(550, '5.7.1', text),
  contentDeferred: (text: string) => reply(451, '4.7.1', text),
  /** failMode closed and rspamd did not answer: RFC 3463 §3.5 4.3.0 other mail system status. */
  contentFilterUnavailable: reply(451, '4.3.0', 'Content filter unavailable, try again later'),
  queued: (id: string) => reply(250, '2.0.0', `Ok: queued as ${id}`),
} as const;

/** The text smtp-server gets from us: the enhanced code leads, the reply hook turns it into the code field. */
export function replyText(r: SmtpReply): string {
  return `${r.enhanced} ${r.text}`;
}

/** An error for an smtp-server handler callback: `responseCode` picks the reply code. */
export function smtpError(r: SmtpReply): Error & { responseCode: number } {
  return Object.assign(new Error(replyText(r)), { responseCode: r.code });
}

/** Matches a reply text that already carries its enhanced status code (RFC 3463 §2: class.subject.detail). */
export const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;
