/**
 * How a contract that carries a message body travels: its small body's raw bytes beside it, never base64 inside
 * its JSON. Two forms, both read here:
 * - attached (bodies up to the inline limit, and direct jobs up to `attachMax`): the contract as JSON in a
 *   header (`Postern-Job`, `Postern-Envelope`, `Postern-Result`) with `body: { attached: <size> }`, and the body's
 *   raw bytes as the NATS payload — no base64, no JSON escaping, no body store round trip;
 * - JSON payload: the whole contract, its body a reference to the body store (or none, a result without body), or
 *   — written by releases before 2026-11-27, still read — inline base64.
 * The queue's message state keeps an attached body the same way in its KV entry (services/queue/state.ts).
 * Header values may not hold CR or LF; JSON.stringify never writes them raw.
 */
import { type MsgHdrs, headers as natsHeaders } from '@nats-io/transport-node';
import { encodeContract, readDeliveryJob, readDeliveryResult, readEnvelope } from './contracts.ts';
import type { BodyRef, DeliveryJob, DeliveryResult, Envelope } from './types.ts';

export const JOB_HEADER = 'Postern-Job';
export const ENVELOPE_HEADER = 'Postern-Envelope';
export const RESULT_HEADER = 'Postern-Result';

/** A contract read off a stream, with its body's bytes when they were attached. */
export interface Carried<T> {
  value: T;
  attached?: Buffer;
}

/** A job read from OUTBOUND, with the body's bytes when they were attached. */
export interface JobMessage {
  job: DeliveryJob;
  attached?: Buffer;
}

type Contract = Envelope | DeliveryJob | DeliveryResult;
type Wire = { payload: Uint8Array | string; headers?: MsgHdrs };
type Readable = { headers?: MsgHdrs; data: Uint8Array; string(): string };

/** The body reference of bytes that travel attached. */
export const attachedRef = (body: Buffer): BodyRef => ({ attached: body.length });

/**
 * Payload and headers of a contract: with `body` given and the contract's body `{ attached }`, the bytes are the
 * payload and the contract goes in `header`; otherwise the contract is the payload.
 */
function wire(header: string, value: Contract, body: Buffer | undefined): Wire {
  const ref = value.body;
  if (!ref || !('attached' in ref)) return { payload: encodeContract(value) };
  if (!body || body.length !== ref.attached)
    throw new Error(
      `${header}: the body says ${ref.attached} attached bytes, ${body?.length ?? 'none'} given`,
    );
  const h = natsHeaders();
  h.set(header, encodeContract(value));
  return { payload: body, headers: h };
}

function read<T extends { body?: BodyRef }>(
  header: string,
  reader: (text: string) => T,
  m: Readable,
): Carried<T> {
  const text = m.headers?.get(header);
  if (!text) {
    const value = reader(m.string());
    if (value.body && 'attached' in value.body)
      throw new Error(`${header}: an attached body, but the contract is the payload`);
    return { value };
  }
  const value = reader(text);
  const attached = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
  if (!value.body || !('attached' in value.body) || value.body.attached !== attached.length)
    throw new Error(`${header}: the attached body is ${attached.length} bytes, the contract says otherwise`);
  return { value, attached };
}

/** Payload and headers of a job whose body travels attached. */
export function attachedJob(
  job: Omit<DeliveryJob, 'body'>,
  body: Buffer,
): { payload: Uint8Array; headers: MsgHdrs } {
  return wire(JOB_HEADER, { ...job, body: attachedRef(body) }, body) as {
    payload: Uint8Array;
    headers: MsgHdrs;
  };
}

/** A job on the wire: attached when its body says so (then `body` holds the bytes). */
export const jobWire = (job: DeliveryJob, body?: Buffer): Wire => wire(JOB_HEADER, job, body);
export const envelopeWire = (env: Envelope, body?: Buffer): Wire => wire(ENVELOPE_HEADER, env, body);
export const resultWire = (result: DeliveryResult, body?: Buffer): Wire => wire(RESULT_HEADER, result, body);

/** Reads either form; throws (naming the field) on a malformed job, like readDeliveryJob. */
export function readJobMessage(m: Readable): JobMessage {
  const { value, attached } = read(JOB_HEADER, readDeliveryJob, m);
  return attached ? { job: value, attached } : { job: value };
}
export const readEnvelopeMessage = (m: Readable): Carried<Envelope> => read(ENVELOPE_HEADER, readEnvelope, m);
export const readResultMessage = (m: Readable): Carried<DeliveryResult> =>
  read(RESULT_HEADER, readDeliveryResult, m);
