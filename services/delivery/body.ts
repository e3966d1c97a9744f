/** Loading a job's message body: inline (base64) or from the `bodies` object store. */
import type { ObjectStore } from '@nats-io/obj';
import type { BodyRef } from '../common/types.ts';

/** Thrown when the stored object is gone (an admin deleted the message): classified as a permanent failure. */
export class BodyGoneError extends Error {
  code = 'EBODYGONE';
  constructor(object: string) {
    super(`message body missing (deleted): object ${object} not in the bodies store`);
  }
}

export async function loadBody(bodies: ObjectStore, body: BodyRef): Promise<Buffer> {
  if ('inline' in body) return Buffer.from(body.inline, 'base64');
  const data = await bodies.getBlob(body.object);
  if (!data) throw new BodyGoneError(body.object);
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
