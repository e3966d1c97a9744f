/**
 * Bounce classification as data (like ZoneMTA's bounces.txt): which permanent failures mean "this address does
 * not exist" and so feed the suppression list. Everything else that fails (policy, content, size, spam…) bounces
 * the message but leaves the address usable for the next one.
 */

/** An enhanced status code (RFC 3463) found in a reply, e.g. "5.1.1", or undefined. */
export function enhancedCode(response: string, given?: string): string | undefined {
  if (given && /^[245]\.\d{1,3}\.\d{1,3}$/.test(given)) return given;
  return /(?:^|\s)([245]\.\d{1,3}\.\d{1,3})(?=\s|$)/.exec(response)?.[1];
}

/** The basic reply code (RFC 5321 §4.2) at the start of a reply, e.g. 550, or undefined. */
export function basicCode(response: string): number | undefined {
  const m = /^\s*([2-5]\d\d)(?:[\s-]|$)/.exec(response);
  return m ? Number(m[1]) : undefined;
}

interface SuppressionRule {
  /** Matches the enhanced status code. */
  enhanced?: RegExp;
  /** Matches the reply text when the server gave no enhanced code. */
  text?: RegExp;
  reason: string;
}

/** RFC 3463 §3.2 addressing-status codes that say the mailbox or its domain does not exist. */
export const SUPPRESSION_RULES: readonly SuppressionRule[] = [
  { enhanced: /^5\.1\.1$/, reason: 'bad destination mailbox address' },
  { enhanced: /^5\.1\.2$/, reason: 'bad destination system address' },
  { enhanced: /^5\.1\.3$/, reason: 'bad destination mailbox address syntax' },
  { enhanced: /^5\.1\.6$/, reason: 'destination mailbox has moved, no forwarding address' },
  { enhanced: /^5\.1\.10$/, reason: 'recipient address has null MX (RFC 7505)' },
  {
    text: /^55[03][\s-].*\b(user unknown|unknown user|no such (user|mailbox)|mailbox (unavailable|not found)|does not exist)\b/i,
    reason: 'unknown user (reply text)',
  },
];

/** The suppression reason for a permanent failure, or undefined when it must not suppress the address. */
export function suppressionReason(response: string, enhanced?: string): string | undefined {
  const code = enhancedCode(response, enhanced);
  for (const rule of SUPPRESSION_RULES) {
    if (rule.enhanced && code && rule.enhanced.test(code)) return rule.reason;
    if (rule.text && !code && rule.text.test(response)) return rule.reason;
  }
  return undefined;
}

/** The RFC 3464 Status for a failed recipient: its enhanced code when permanent, else a class default. */
export function dsnStatus(response: string, enhanced?: string): string {
  const code = enhancedCode(response, enhanced);
  if (code?.startsWith('5.')) return code;
  // RFC 3463 §3.5: 552 is a mailbox/size problem; any other permanent reply without a code is "other".
  return basicCode(response) === 552 ? '5.2.2' : '5.0.0';
}
