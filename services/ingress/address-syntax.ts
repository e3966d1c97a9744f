/**
 * Strict mailbox syntax for envelope addresses (pure). Anything a downstream MTA could read as a routing
 * instruction is refused, because accepting it for a local domain and relaying it later is the classic
 * open-relay hole: source routes (RFC 5321 §4.1.2, Appendix C), `%` hacks (`user%other@ours`), UUCP bang paths
 * (`host!user`), quoted local parts hiding `@` or `%`, and address literals (`user@[10.0.0.1]`).
 */

export type MailboxVerdict = { ok: true; local: string; domain: string } | { ok: false; reason: string };

/** RFC 5322 §3.2.3 atext minus `%` and `!` (routing characters), plus UTF-8 (RFC 6531) for SMTPUTF8. */
const LOCAL_CHAR = /^[A-Za-z0-9#$&'*+/=?^_`{|}~\-.\u0080-\u{10FFFF}]+$/u;
const LABEL =
  /^[A-Za-z0-9\u0080-\u{10FFFF}](?:[A-Za-z0-9\u0080-\u{10FFFF}-]{0,61}[A-Za-z0-9\u0080-\u{10FFFF}])?$/u;

/** Checks a `local@domain` mailbox; the caller maps a refusal to 501 5.1.3 (or 5.1.7 for senders). */
export function checkMailbox(address: string): MailboxVerdict {
  if (!address) return { ok: false, reason: 'empty address' };
  const parts = address.split('@');
  if (parts.length !== 2) return { ok: false, reason: 'address must contain exactly one @' };
  const [local = '', domain = ''] = parts;
  if (!local || !domain) return { ok: false, reason: 'missing local part or domain' };
  if (local.includes('"') || local.includes('\\'))
    return { ok: false, reason: 'quoted local parts are refused' };
  if (local.includes('%')) return { ok: false, reason: '% routing is refused' };
  if (local.includes('!')) return { ok: false, reason: 'bang paths are refused' };
  if (local.length > 64 || !LOCAL_CHAR.test(local)) return { ok: false, reason: 'bad local part' };
  if (local.startsWith('.') || local.endsWith('.') || local.includes('..')) {
    return { ok: false, reason: 'bad dots in local part' };
  }
  if (domain.startsWith('[')) return { ok: false, reason: 'address literals are refused' };
  if (domain.length > 253 || !domain.split('.').every((l) => LABEL.test(l))) {
    return { ok: false, reason: 'bad domain' };
  }
  return { ok: true, local, domain: domain.toLowerCase() };
}

/**
 * True when a MAIL/RCPT command line carries a source route (`<@relay1,@relay2:user@host>`). smtp-server
 * strips the route as RFC 5321 Appendix C allows; we look at the raw line to refuse it outright instead.
 */
export function hasSourceRoute(commandLine: string): boolean {
  return /^\s*(?:MAIL\s+FROM|RCPT\s+TO)\s*:\s*<\s*@/i.test(commandLine);
}

/** The domain part of an address, lower-cased; '' for the null sender or a domainless address. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}
