/**
 * How a delivery job travels on OUTBOUND. Two forms, both read by `readJobMessage`:
 * - JSON payload (the queue's jobs, and direct jobs whose body is stored or too large to attach): the whole job,
 *   its body a reference or inline base64 (encodeContract);
 * - attached (direct jobs up to `attachMax`, the lean path's common case): the job without its body as JSON in
 *   the `Postern-Job` header and the body's raw bytes as the payload — no base64, no JSON escaping, no body store
 *   round trip. `job.body` reads as `{ attached: <size> }` and the bytes come alongside.
 * Header values may not hold CR or LF; JSON.stringify never writes them raw.
 */
import { type MsgHdrs, headers as natsHeaders } from '@nats-io/transport-node';
import { encodeContract, readDeliveryJob } from './contracts.ts';
import type { DeliveryJob } from './types.ts';

export const JOB_HEADER = 'Postern-Job';

/** A job read from OUTBOUND, with the body's bytes when they were attached. */
export interface JobMessage {
  job: DeliveryJob;
  attached?: Buffer;
}

/** Payload and headers of a job whose body travels attached. */
export function attachedJob(
  job: Omit<DeliveryJob, 'body'>,
  body: Buffer,
): { payload: Uint8Array; headers: MsgHdrs } {
  const h = natsHeaders();
  h.set(JOB_HEADER, encodeContract({ ...job, body: { attached: body.length } }));
  return { payload: body, headers: h };
}

/** Reads either form; throws (naming the field) on a malformed job, like readDeliveryJob. */
export function readJobMessage(m: { headers?: MsgHdrs; data: Uint8Array; string(): string }): JobMessage {
  const header = m.headers?.get(JOB_HEADER);
  if (!header) return { job: readDeliveryJob(m.string()) };
  const job = readDeliveryJob(header);
  const attached = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
  if (!('attached' in job.body) || job.body.attached !== attached.length)
    throw new Error(`${JOB_HEADER}: the attached body is ${attached.length} bytes, the job says otherwise`);
  return { job, attached };
}
