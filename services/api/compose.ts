/**
 * Turns a validated request into what SMTP DATA would have carried: the message bytes and the envelope.
 * Raw messages are taken as they are, with line ends made CRLF (JSON strings usually carry bare LF, which SMTP
 * forbids: RFC 5321 §2.3.8). Structured fields go through nodemailer's MailComposer, which writes the MIME
 * structure, encodes non-ASCII headers (RFC 2047) and derives the envelope from From/To/Cc/Bcc — with Bcc in the
 * envelope and never in the headers.
 */
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type Mail from 'nodemailer/lib/mailer/index.js';
import type { RawRequest, StructuredRequest, SubmitRequest } from './request-schema.ts';

export interface Composed {
  from: string;
  to: string[];
  message: Buffer;
}

export class ComposeError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

/** Bare CR or LF → CRLF; the message ends with CRLF, like a DATA payload before its final dot. */
export function crlf(text: string): string {
  const fixed = text.replace(/\r\n|\r|\n/g, '\r\n');
  return fixed.endsWith('\r\n') ? fixed : `${fixed}\r\n`;
}

/** RFC 5322 §2.2: a header field name is printable ASCII but ':'; a message starts with one. */
const FIRST_HEADER = /^[\x21-\x39\x3b-\x7e]+:/;

function composeRaw(req: RawRequest): Composed {
  if (!FIRST_HEADER.test(req.raw)) {
    throw new ComposeError('raw', 'raw: not an RFC 5322 message (it must start with a header field)');
  }
  return { from: req.envelope.from, to: [...req.envelope.to], message: Buffer.from(crlf(req.raw), 'utf8') };
}

async function composeStructured(req: StructuredRequest, messageId: string): Promise<Composed> {
  const mail: Mail.Options = {
    from: req.from,
    to: req.to,
    ...(req.cc ? { cc: req.cc } : {}),
    ...(req.bcc ? { bcc: req.bcc } : {}),
    ...(req.replyTo ? { replyTo: req.replyTo } : {}),
    ...(req.subject !== undefined ? { subject: req.subject } : {}),
    ...(req.text !== undefined ? { text: req.text } : {}),
    ...(req.html !== undefined ? { html: req.html } : {}),
    ...(req.headers ? { headers: req.headers } : {}),
    attachments: (req.attachments ?? []).map((a) => ({
      filename: a.filename,
      contentType: a.contentType,
      content: Buffer.from(a.content, 'base64'),
    })),
    messageId,
    // Everything comes from the request: MailComposer must never read a file or fetch a URL on its behalf.
    disableFileAccess: true,
    disableUrlAccess: true,
  };
  const node = new MailComposer(mail).compile();
  const derived = node.getEnvelope();
  const message = await node.build();
  return {
    from: req.envelope?.from ?? (derived.from || ''),
    to: req.envelope ? [...req.envelope.to] : derived.to,
    message,
  };
}

/** The message bytes and envelope of a request; `messageId` is the Message-ID MailComposer writes. */
export function compose(req: SubmitRequest, messageId: string): Promise<Composed> {
  return 'raw' in req ? Promise.resolve().then(() => composeRaw(req)) : composeStructured(req, messageId);
}
