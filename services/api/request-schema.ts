/**
 * The body of `POST /v1/messages`: one TypeBox definition, compiled into the validators the API runs and
 * rendered into docs/openapi.yaml (services/api/openapi.ts), so the document describes exactly what the server
 * accepts. Two shapes, told apart by the `raw` property: a raw RFC 5322 message with its envelope, or structured
 * fields that nodemailer's MailComposer turns into MIME. `additionalProperties: false` everywhere: a field we
 * would ignore is refused instead (a schema never accepts what the code ignores).
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { TypeCompiler, type ValueError } from '@sinclair/typebox/compiler';
import { ValueErrorType } from '@sinclair/typebox/errors';

const strict = { additionalProperties: false } as const;

/** A bare mailbox `local@domain`; the strict RFC 5321 syntax check (address-syntax.ts) runs after the schema. */
export const Mailbox = Type.String({
  minLength: 3,
  maxLength: 320,
  pattern: '^[^\\s<>@,;:"]+@[^\\s<>@,;:"]+$',
  description: 'A bare mailbox, local@domain (no display name, no angle brackets)',
  examples: ['app@example.org'],
});

/** A header-safe single line (no CR/LF: a value must never start a header of its own). */
const Line = (maxLength: number, description: string) =>
  Type.String({ maxLength, pattern: '^[^\\r\\n]*$', description });

const Address = Type.Union(
  [
    Mailbox,
    Type.Object({ name: Line(256, 'Display name'), address: Mailbox }, { ...strict, title: 'NamedAddress' }),
  ],
  { description: 'local@domain, or {name, address} for a display name' },
);

const Recipients = (description: string) => Type.Array(Address, { minItems: 1, maxItems: 1000, description });

export const EnvelopeSchema = Type.Object(
  {
    from: Mailbox,
    to: Type.Array(Mailbox, { minItems: 1, maxItems: 1000 }),
  },
  { ...strict, description: 'SMTP envelope (MAIL FROM / RCPT TO)' },
);

/** Canonical base64 (RFC 4648 §4, padded). */
const BASE64 = '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$';

const Attachment = Type.Object(
  {
    filename: Type.String({ minLength: 1, maxLength: 255, pattern: '^[^\\x00-\\x1f\\x7f/\\\\]+$' }),
    contentType: Type.String({
      maxLength: 255,
      pattern: '^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$',
      description: 'MIME type without parameters, e.g. application/pdf',
    }),
    content: Type.String({ pattern: BASE64, contentEncoding: 'base64', description: 'The file, base64' }),
  },
  strict,
);

/**
 * Headers an application may add. Structural and address headers come from the fields above (MailComposer writes
 * them), so only extension and threading headers are allowed here.
 */
export const HEADER_NAME =
  '^(?:[Xx]-[A-Za-z0-9-]{1,72}|List-[A-Za-z-]{1,40}|In-Reply-To|References|Auto-Submitted|Precedence)$';

export const RawRequest = Type.Object(
  {
    envelope: EnvelopeSchema,
    raw: Type.String({
      minLength: 1,
      description: 'The whole RFC 5322 message, headers and body; bare LF line ends are converted to CRLF',
    }),
  },
  { ...strict, title: 'RawMessage' },
);
export type RawRequest = Static<typeof RawRequest>;

export const StructuredRequest = Type.Object(
  {
    envelope: Type.Optional(EnvelopeSchema),
    from: Address,
    to: Recipients('To recipients'),
    cc: Type.Optional(Recipients('Cc recipients')),
    bcc: Type.Optional(Recipients('Bcc recipients: in the envelope, never in the headers')),
    replyTo: Type.Optional(Address),
    subject: Type.Optional(Line(998, 'Subject')),
    text: Type.Optional(Type.String({ description: 'Plain-text body' })),
    html: Type.Optional(Type.String({ description: 'HTML body (sent as multipart/alternative with text)' })),
    attachments: Type.Optional(Type.Array(Attachment, { maxItems: 100 })),
    headers: Type.Optional(
      Type.Record(Type.String({ pattern: HEADER_NAME }), Line(998, 'Header value'), {
        additionalProperties: false,
        description: 'Extra headers: X-*, List-*, In-Reply-To, References, Auto-Submitted, Precedence',
      }),
    ),
  },
  { ...strict, title: 'StructuredMessage' },
);
export type StructuredRequest = Static<typeof StructuredRequest>;

export type SubmitRequest = RawRequest | StructuredRequest;

/** The response bodies (the OpenAPI document renders these too). */
export const Accepted = Type.Object(
  { id: Type.String({ description: 'Postern message id (also in the Received header and the logs)' }) },
  { ...strict, title: 'Accepted' },
);
export const ApiError = Type.Object(
  {
    error: Type.String({ description: 'Machine-readable code, e.g. invalid-request, relay-denied' }),
    message: Type.String({ description: 'What went wrong, naming the field' }),
    field: Type.Optional(Type.String({ description: 'The offending field, e.g. to[1] or envelope.from' })),
  },
  { ...strict, title: 'Error' },
);

const raw = TypeCompiler.Compile(RawRequest);
const structured = TypeCompiler.Compile(StructuredRequest);

export type Validation = { ok: true; request: SubmitRequest } | { ok: false; field: string; message: string };

/** `/to/0/address` → `to[0].address` (how the docs and the errors name a field). */
export function fieldName(path: string): string {
  return path
    .split('/')
    .filter(Boolean)
    .map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`))
    .join('');
}

function describe(e: ValueError): { field: string; message: string } {
  const field = fieldName(e.path) || 'body';
  if (e.type === ValueErrorType.ObjectAdditionalProperties) {
    return { field, message: `${field}: unknown property (see docs/openapi.yaml)` };
  }
  if (e.type === ValueErrorType.Union) {
    return { field, message: `${field}: must be an address local@domain or {"name", "address"}` };
  }
  if (e.type === ValueErrorType.StringPattern && field.startsWith('headers')) {
    return { field, message: `${field}: header not allowed or not a single line (allowed: ${HEADER_NAME})` };
  }
  return { field, message: `${field}: ${e.message}` };
}

/**
 * Validates a parsed JSON body. A body with `raw` is judged as a raw message, any other as structured fields,
 * which is exactly the `oneOf` of the OpenAPI document (`raw` is required by one shape and refused by the other).
 */
export function validateRequest(body: unknown): Validation {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, field: 'body', message: 'body: must be a JSON object' };
  }
  const isRaw = 'raw' in body;
  const check = isRaw ? raw : structured;
  if (check.Check(body)) return { ok: true, request: body as SubmitRequest };
  // A property of the other shape is the likeliest mistake: name it before any missing property.
  const known = (isRaw ? RawRequest : StructuredRequest).properties;
  const stray = Object.keys(body).find((k) => !(k in known));
  if (stray) {
    return {
      ok: false,
      field: stray,
      message: isRaw
        ? `${stray}: not allowed with raw (send either raw with its envelope, or structured fields)`
        : `${stray}: unknown property (see docs/openapi.yaml)`,
    };
  }
  const first = check.Errors(body).First();
  return first ? { ok: false, ...describe(first) } : { ok: false, field: 'body', message: 'body: invalid' };
}

/** Every schema the OpenAPI document names, by component name. */
export const COMPONENTS: Record<string, TSchema> = {
  RawMessage: RawRequest,
  StructuredMessage: StructuredRequest,
  Accepted,
  Error: ApiError,
};
