/**
 * Classification of remote replies and local errors into delivered / deferred / failed — as data, like ZoneMTA's
 * bounces.txt: an ordered table of (pattern → status, category, enhanced code), first match wins.
 *
 * Every input is first written as one line so a single regex can match it:
 *   reply:<SMTP reply text>               e.g. "reply:550 5.1.1 No such user"
 *   error:<category>:<code>:<message>     e.g. "error:dns:ENULLMX:…", "error:network:ECONNREFUSED:…"
 * (category is mx-connect's `err.category` — dns | network | policy | dane — or '' for other errors.)
 */
import type { RecipientOutcome } from '../common/types.ts';

export type Status = RecipientOutcome['status'];

export interface Rule {
  pattern: RegExp;
  status: Status;
  category: string;
  /** Enhanced status code (RFC 3463) to report when the reply itself carries none. */
  enhanced?: string;
}

/** Ordered: specific rules before the catch-alls. */
export const RULES: readonly Rule[] = [
  // RFC 5321 §4.2.1: 2yz positive completion.
  { pattern: /^reply:2\d\d\b/, status: 'delivered', category: 'accepted' },
  // Servers that answer 5xx for greylisting or overload although they mean "later" (ZoneMTA keeps such rules).
  {
    pattern: /^reply:5\d\d\b.*\b(greylist|graylist|try again later|temporar(il)?y (deferred|unavailable))/i,
    status: 'deferred',
    category: 'greylist',
  },
  { pattern: /^reply:4\d\d\b.*\b4\.2\.2\b/, status: 'deferred', category: 'quota' },
  { pattern: /^reply:4\d\d\b.*\b(greylist|graylist)/i, status: 'deferred', category: 'greylist' },
  // RFC 5321 §4.2.1: 4yz transient negative completion — try again later.
  { pattern: /^reply:4\d\d\b/, status: 'deferred', category: 'transient' },
  { pattern: /^reply:5\d\d\b.*\b5\.1\.[0-3]\b/, status: 'failed', category: 'recipient' },
  { pattern: /^reply:5\d\d\b.*\b5\.2\.2\b/, status: 'failed', category: 'quota' },
  { pattern: /^reply:5\d\d\b.*\b5\.7\.\d+\b/, status: 'failed', category: 'policy' },
  // RFC 5321 §4.2.1: 5yz permanent negative completion.
  { pattern: /^reply:5\d\d\b/, status: 'failed', category: 'permanent' },
  // Anything else a server says (1yz/3yz where a final reply was due, garbage) is a protocol error: retry.
  { pattern: /^reply:/, status: 'deferred', category: 'protocol', enhanced: '4.5.0' },
  // RFC 7505 §4.3: a null MX means the domain accepts no mail — bounce with 5.1.10.
  { pattern: /^error:dns:ENULLMX:/, status: 'failed', category: 'dns', enhanced: '5.1.10' },
  // NXDOMAIN / no MX and no address records: the destination does not exist (RFC 3463 X.1.2).
  { pattern: /^error:dns:(ENOTFOUND|ENODATA):/, status: 'failed', category: 'dns', enhanced: '5.1.2' },
  // SERVFAIL, REFUSED, resolver timeouts: DNS is broken now, not the address.
  { pattern: /^error:dns:/, status: 'deferred', category: 'dns', enhanced: '4.4.3' },
  {
    pattern: /^error:[^:]*:E?TIMEDOUT:|^error:[^:]*:ETIMEOUT:/,
    status: 'deferred',
    category: 'timeout',
    enhanced: '4.4.2',
  },
  {
    pattern: /^error:[^:]*:(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|EPIPE|ECONNECTION|ESOCKET):/,
    status: 'deferred',
    category: 'network',
    enhanced: '4.4.1',
  },
  // The route's TLS policy was not met (services/delivery/tls-policy.ts): deferred, never sent in clear text.
  // RFC 3463 X.7.10 "encryption needed": STARTTLS not offered, or the handshake failed.
  { pattern: /^error:[^:]*:(ETLS|ENOTLS):/, status: 'deferred', category: 'tls', enhanced: '4.7.10' },
  // RFC 3463 X.7.5 "cryptographic failure": certificate not valid (PKIX), no TLSA match, MX not in MTA-STS policy.
  { pattern: /^error:[^:]*:ETLSVERIFY:/, status: 'deferred', category: 'tls', enhanced: '4.7.5' },
  { pattern: /^error:auth:/, status: 'deferred', category: 'auth', enhanced: '4.7.8' },
  { pattern: /^error:policy:/, status: 'deferred', category: 'policy', enhanced: '4.4.4' },
  { pattern: /^error:dane:/, status: 'deferred', category: 'dane', enhanced: '4.7.5' },
  // The body object was deleted by an admin: nothing will ever be sendable (RFC 3463 X.6.0 media error).
  { pattern: /^error:[^:]*:EBODYGONE:/, status: 'failed', category: 'local', enhanced: '5.6.0' },
  // The job's site stayed suspended or at its limits until the message expired (shaping/gate.ts): the queue
  // expires it with this reason. RFC 3463 X.4.5 "mail system congestion".
  { pattern: /^error:[^:]*:ESITEWAIT:/, status: 'deferred', category: 'site', enhanced: '4.4.5' },
  // Unexpected local errors never bounce mail: defer and let the retry schedule try again.
  { pattern: /^error:/, status: 'deferred', category: 'local', enhanced: '4.3.0' },
];

export interface Classification {
  status: Status;
  category: string;
  response: string;
  enhanced?: string;
}

const ENHANCED = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/;

/** The enhanced status code (RFC 3463) a reply carries, if any. */
export function enhancedOf(reply: string): string | undefined {
  return ENHANCED.exec(reply)?.[1];
}

function apply(line: string, response: string, carried: string | undefined): Classification {
  const rule = RULES.find((r) => r.pattern.test(line)) ?? RULES[RULES.length - 1]!;
  const enhanced = carried ?? rule.enhanced ?? classDefault(response);
  return { status: rule.status, category: rule.category, response, ...(enhanced ? { enhanced } : {}) };
}

function classDefault(reply: string): string | undefined {
  const c = /^([245])\d\d\b/.exec(reply)?.[1];
  return c ? `${c}.0.0` : undefined;
}

/** Classifies one SMTP/LMTP reply line (multi-line replies: pass them joined; the first code counts). */
export function classifyReply(reply: string): Classification {
  const text = reply.replace(/\r?\n/g, ' ').trim();
  return apply(`reply:${text}`, text, enhancedOf(text));
}

/** What we read off errors from mx-connect, nodemailer and node:net. */
export interface ErrorLike {
  message?: string;
  code?: string;
  category?: string;
  /** Remote reply that caused the error (nodemailer sets it). */
  response?: string;
  responseCode?: number;
}

/** Classifies an error: a remote reply inside it wins; otherwise the local error code decides. */
export function classifyError(err: ErrorLike): Classification {
  // A smarthost refusing our credentials is our configuration problem, not the message's: defer, keep the text.
  if (err.code === 'EAUTH') {
    const text = (err.response ?? err.message ?? 'authentication failed').replace(/\r?\n/g, ' ');
    return apply(`error:auth:EAUTH:${text}`, text, enhancedOf(text));
  }
  if (err.responseCode && typeof err.response === 'string' && /^\d{3}/.test(err.response)) {
    return classifyReply(err.response);
  }
  const message = (err.message ?? String(err)).replace(/\r?\n/g, ' ');
  const code = err.code ?? '';
  return apply(`error:${err.category ?? ''}:${code}:${message}`, message, undefined);
}
