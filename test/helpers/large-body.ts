/**
 * Test helper: large messages for the object store, and real damage done to a stored object — chunks removed from
 * the object store's stream with the JetStream API, the object's meta entry left in place — to make reads fail.
 */
import { createHash, randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { BodyStore } from '../../services/common/body-store.ts';
import { BODY_BUCKET } from '../../services/common/nats.ts';

/**
 * A message of about `size` bytes: CRLF lines of random base64, every 50th one starting with a dot (so dot-stuffing
 * has work on the way and must be undone exactly by the peer).
 */
export function largeMessage(size: number, subject = 'large'): Buffer {
  const lines = [`From: Sender <sender@origin.test>`, 'To: rcpt@example.test', `Subject: ${subject}`, ''];
  let total = lines.join('\r\n').length;
  for (let i = 0; total < size; i++) {
    const line = (i % 50 === 0 ? '.' : '') + randomBytes(57).toString('base64');
    lines.push(line);
    total += line.length + 2;
  }
  return Buffer.from(`${lines.join('\r\n')}\r\n`);
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The stream holding the body objects, and the subject of one object's chunks. */
async function chunkSubject(bodies: BodyStore, name: string): Promise<{ stream: string; subject: string }> {
  const info = await (await bodies.objects()).info(name);
  if (!info) throw new Error(`no object ${name}`);
  // The object store's layout (ADR-20): stream OBJ_<bucket>, chunks on $O.<bucket>.C.<nuid>.
  return { stream: `OBJ_${BODY_BUCKET}`, subject: `$O.${BODY_BUCKET}.C.${info.nuid}` };
}

/** Deletes the object's last chunk: a read gets all but the end, then the library's digest check fails. */
export async function dropLastChunk(nc: NatsConnection, bodies: BodyStore, name: string): Promise<void> {
  const { stream, subject } = await chunkSubject(bodies, name);
  const jsm = await jetstreamManager(nc);
  const last = await jsm.streams.getMessage(stream, { last_by_subj: subject });
  if (!last) throw new Error(`object ${name} has no chunks`);
  await jsm.streams.deleteMessage(stream, last.seq);
}

/** Purges every chunk of the object but keeps its meta entry: a read finds the object and then no data. */
export async function purgeChunks(nc: NatsConnection, bodies: BodyStore, name: string): Promise<void> {
  const { stream, subject } = await chunkSubject(bodies, name);
  await (await jetstreamManager(nc)).streams.purge(stream, { filter: subject });
}
