/**
 * PURE: what an rspamd verdict means for the SMTP client and for the message (the table in docs/ingress.md
 * "Content filter"), and the header edits applied to an accepted message.
 */
import { encodeWords } from 'nodemailer/lib/mime-funcs';
import { REPLIES, type SmtpReply } from './replies.ts';
import type { RspamdResult } from './rspamd-client.ts';

/** Header edits for an accepted message. */
export interface HeaderEdits {
  /** Header names removed (every occurrence, case-insensitive) before anything is added. */
  remove: string[];
  /** Headers added at the top of the message, in order. */
  add: [name: string, value: string][];
  /** New Subject (replaces every Subject header, or is added when there is none). */
  subject?: string;
}

export type Verdict =
  | { kind: 'refuse'; action: string; reply: SmtpReply }
  | { kind: 'accept'; action: string; edits: HeaderEdits };

/** Headers we write on every scanned message; copies arriving from outside are forged and removed. */
export const SPAM_HEADERS = ['X-Spam-Flag', 'X-Spam-Status'];

/** Metric label for an action: `soft reject` → `soft_reject`; unknown actions → `other`. */
const KNOWN = ['reject', 'discard', 'soft reject', 'greylist', 'rewrite subject', 'add header', 'no action'];
export function actionLabel(action: string): string {
  return KNOWN.includes(action) ? action.replace(/ /g, '_') : 'other';
}

/** One line of printable ASCII, short, for an SMTP reply text (rspamd's smtp_message is free text). */
function replyText(message: string | undefined, fallback: string): string {
  const clean = (message ?? '')
    .replace(/[^\x20-\x7e]+/g, ' ')
    .trim()
    .slice(0, 200);
  return clean || fallback;
}

function milterHeaders(result: RspamdResult): [string, string][] {
  const added: [string, string][] = [];
  for (const [name, spec] of Object.entries(result.milter?.add_headers ?? {})) {
    for (const v of Array.isArray(spec) ? spec : [spec]) {
      const value = typeof v === 'string' ? v : v?.value;
      if (typeof value === 'string' && /^[\x21-\x39\x3b-\x7e]+$/.test(name)) added.push([name, value]);
    }
  }
  return added;
}

/**
 * The verdict for rspamd's action. Refusals are answered at end of DATA, so nothing is queued:
 * - reject → `550 5.7.1`, and discard too — after a 250 we would have to drop accepted mail silently, which
 *   Postern never does (the sender learns instead);
 * - soft reject and greylist → `451 4.7.1` (RFC 3463 §3.8: delivery not authorized, temporarily);
 * - add header / rewrite subject → accepted with `X-Spam-Flag: YES` (and the new Subject);
 * - no action, or an action this version does not know → accepted (logged by the caller).
 */
export function verdictOf(result: RspamdResult): Verdict {
  const action = result.action;
  const smtpMessage = result.messages?.smtp_message;
  switch (action) {
    case 'reject':
    case 'discard':
      return {
        kind: 'refuse',
        action,
        reply: REPLIES.contentRejected(replyText(smtpMessage, 'Spam message rejected')),
      };
    case 'soft reject':
      return {
        kind: 'refuse',
        action,
        reply: REPLIES.contentDeferred(replyText(smtpMessage, 'Try again later')),
      };
    case 'greylist':
      return {
        kind: 'refuse',
        action,
        reply: REPLIES.contentDeferred(replyText(smtpMessage, 'Greylisted, try again later')),
      };
  }
  const spam = action === 'add header' || action === 'rewrite subject';
  const score = `score=${Number(result.score).toFixed(2)} required=${Number(result.required_score).toFixed(2)}`;
  const milter = milterHeaders(result);
  const edits: HeaderEdits = {
    remove: [...SPAM_HEADERS, ...Object.keys(result.milter?.remove_headers ?? {}), ...milter.map(([n]) => n)],
    add: [
      ...(spam ? [['X-Spam-Flag', 'YES'] as [string, string]] : []),
      ['X-Spam-Status', `${spam ? 'Yes' : 'No'}, ${score}`],
      ...milter,
    ],
  };
  if (action === 'rewrite subject' && typeof result.subject === 'string') edits.subject = result.subject;
  return { kind: 'accept', action, edits };
}

/** A header field as written: non-ASCII values as RFC 2047 encoded words, long lines folded (RFC 5322 §2.2.3). */
function headerLine(name: string, value: string): string {
  const clean = value.replace(/[\r\n]+/g, ' ');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ASCII range check
  const encoded = /^[\x00-\x7f]*$/.test(clean) ? clean : encodeWords(clean, 'B', 52);
  return `${name}: ${encoded}\r\n`;
}

/**
 * Applies the edits to a raw message (CRLF line endings). Only the header section changes; the body bytes
 * stay as received.
 */
export function applyEdits(message: Buffer, edits: HeaderEdits): Buffer {
  const end = message.indexOf('\r\n\r\n');
  const headerEnd = end === -1 ? message.length : end + 2;
  const header = message.subarray(0, headerEnd).toString('latin1');
  const remove = new Set(
    [...edits.remove, ...(edits.subject !== undefined ? ['subject'] : [])].map((n) => n.toLowerCase()),
  );
  // Unfolded fields: a line starting with space/tab continues the previous field (RFC 5322 §2.2.3).
  const fields = header.split(/\r\n(?![ \t])/).filter((f) => f !== '');
  const kept = fields.filter((f) => !remove.has(f.slice(0, f.indexOf(':')).trim().toLowerCase()));
  const added = edits.add.map(([n, v]) => headerLine(n, v)).join('');
  const subject = edits.subject !== undefined ? headerLine('Subject', edits.subject) : '';
  const rebuilt = `${added}${kept.map((f) => `${f}\r\n`).join('')}${subject}`;
  return Buffer.concat([Buffer.from(rebuilt, 'latin1'), message.subarray(headerEnd)]);
}
