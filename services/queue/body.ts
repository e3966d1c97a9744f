/**
 * Access to stored message bodies for the queue: the original's header section (for DSN part 3) and deletion
 * of the object once every recipient is final. Bodies are inline (base64) or in object store `bodies`.
 */
import type { ObjectStore } from '@nats-io/obj';
import type { BodyRef } from '../common/types.ts';
import { headerSection } from './dsn.ts';

/** Headers longer than this are cut: a DSN needs the original's headers, not a megabyte of them. */
const MAX_HEADER_BYTES = 256 * 1024;

/** The header section of a body, or undefined when the object no longer exists. */
export async function readHeaderSection(bodies: ObjectStore, body: BodyRef): Promise<string | undefined> {
  if ('inline' in body) return headerSection(Buffer.from(body.inline, 'base64'));
  const obj = await bodies.get(body.object);
  if (!obj) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  const reader = obj.data.getReader();
  try {
    // Read only until the blank line ending the header section (or the cap): the body can be large.
    while (size < MAX_HEADER_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(Buffer.from(value));
      size += value.length;
      if (/\r?\n\r?\n/.test(Buffer.concat(chunks).toString('latin1'))) break;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return headerSection(Buffer.concat(chunks).subarray(0, MAX_HEADER_BYTES));
}

/** Deletes a body object; inline bodies and already-deleted objects need nothing. */
export async function deleteBody(bodies: ObjectStore, body: BodyRef): Promise<void> {
  if ('inline' in body) return;
  try {
    await bodies.delete(body.object);
  } catch (err) {
    if (!/not found/i.test(String((err as Error).message))) throw err;
  }
}
