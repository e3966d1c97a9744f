/**
 * Stored message bodies as the queue needs them: the original's header section (for DSN part 3) and deletion
 * once every recipient is final. Storage itself is services/common/body-store.ts.
 */
import type { BodyStore } from '../common/body-store.ts';
import type { BodyRef } from '../common/types.ts';
import { headerSection } from './dsn.ts';

/** Headers longer than this are cut: a DSN needs the original's headers, not a megabyte of them. */
const MAX_HEADER_BYTES = 256 * 1024;

/** The header section of a body, or undefined when the body no longer exists. */
export async function readHeaderSection(
  bodies: BodyStore,
  body: BodyRef,
  attached?: Buffer,
): Promise<string | undefined> {
  if (!('object' in body)) {
    try {
      return headerSection((await bodies.get(body, attached)).subarray(0, MAX_HEADER_BYTES));
    } catch (err) {
      if ((err as { code?: string }).code === 'EBODYGONE') return undefined;
      throw err;
    }
  }
  const obj = await (await bodies.objects()).get(body.object);
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

/**
 * The whole message as text when it is at most `max` bytes and still exists (RET=FULL), else undefined. Bodies in
 * the object store are above the server's max payload, so never small enough.
 */
export async function readSmallMessage(
  bodies: BodyStore,
  body: BodyRef,
  max: number,
  attached?: Buffer,
): Promise<string | undefined> {
  if ('object' in body) return undefined;
  if ('stored' in body && body.size > max) return undefined;
  try {
    const raw = await bodies.get(body, attached);
    // Decoded as UTF-8 because the DSN is composed as text; 8-bit mail in another charset is not byte-exact.
    return raw.length > max ? undefined : Buffer.from(raw).toString('utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'EBODYGONE') return undefined;
    throw err;
  }
}

/** Deletes a stored body; inline bodies and bodies already gone need nothing. */
export function deleteBody(bodies: BodyStore, body: BodyRef): Promise<void> {
  return bodies.delete(body);
}
