/**
 * Reading message bodies the way services carry them (services/common/body-wire.ts): attached raw bytes beside the
 * envelope or job, or — as releases before 2026-11-27 wrote them — inline base64 in the JSON.
 */
import type { MsgHdrs } from '@nats-io/transport-node';
import { readEnvelopeMessage } from '../../services/common/body-wire.ts';
import type { BodyRef, Envelope } from '../../services/common/types.ts';

/** An envelope read off SUBMIT, with the bytes of its attached body. */
export type SeenEnvelope = Envelope & { attached?: Buffer };

/** Reads an envelope (either form) off a SUBMIT message. */
export function seenEnvelope(m: { headers?: MsgHdrs; data: Uint8Array; string(): string }): SeenEnvelope {
  const { value, attached } = readEnvelopeMessage(m);
  return attached ? { ...value, attached } : value;
}

/** The bytes of a body that travels with its envelope or job (attached or inline); undefined when stored. */
export function bodyBytes(x: { body: BodyRef; attached?: Buffer | undefined }): Buffer | undefined {
  if ('attached' in x.body) return x.attached;
  return 'inline' in x.body ? Buffer.from(x.body.inline, 'base64') : undefined;
}

/** bodyBytes as text ('' when stored). */
export function bodyText(
  x: { body: BodyRef; attached?: Buffer | undefined },
  encoding: BufferEncoding = 'utf8',
): string {
  return bodyBytes(x)?.toString(encoding) ?? '';
}
