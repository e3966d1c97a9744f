/**
 * One object-store body as a Node Readable, with the checks @nats-io/obj leaves to its caller. `ObjectStore.get`
 * hands back a web ReadableStream fed by an ordered push consumer over the object's chunks, and an `error`
 * promise for the read as a whole. The library errors the stream itself when the SHA-256 digest does not match,
 * but two ways of ending short would pass unnoticed by a plain pipe, and a short body that ends cleanly would be
 * sent with its final dot and accepted by the peer as the whole message:
 * - the consumer's loop stops without closing the stream (its subscription closed, e.g. the NATS connection went
 *   away): the stream never ends — here, an error as soon as the loop's `error` promise settled with the stream
 *   still open;
 * - chunks that never come (purged or lost from the stream while the meta entry stays): the consumer waits for
 *   ever (missed heartbeats only reset an ordered consumer) — here, an error once no chunk came for `stallMs`.
 * The byte count is checked against the object's size as well. Every failure destroys the Readable with an
 * error, never ends it.
 *
 * Memory: the library's consumer enqueues chunks as fast as JetStream pushes them, whatever the reader's pace
 * (its ReadableStream has no pull), so a reader slower than the store still buffers the rest of the object as
 * chunks — one copy at most, released as it is sent, instead of getBlob's chunks plus their concatenation.
 */
import { Readable } from 'node:stream';
import type { ObjectStore } from '@nats-io/obj';

/** Thrown when a stored body is gone (an admin deleted the message): a permanent failure for delivery. */
export class BodyGoneError extends Error {
  code = 'EBODYGONE';
  constructor(name: string) {
    super(`message body missing (deleted): ${name} not in the body store`);
  }
}

/** A read that did not deliver the whole object: the body store's trouble, retried later (never a bounce). */
export class BodyReadError extends Error {
  code = 'EBODYREAD';
}

/** What a wait for the next chunk can end in besides the chunk. */
type Interrupt = 'stalled' | 'loop over';

/** A Readable over object `name`; it fails with BodyGoneError when the object is gone by the time it is read. */
export function objectStream(objects: () => Promise<ObjectStore>, name: string, stallMs: number): Readable {
  // Readable.from starts the generator at the first read: the object is fetched only once a reader (the SMTP
  // DATA phase, or the DKIM signer) wants its bytes, not when the factory is called.
  return Readable.from(chunks(objects, name, stallMs), { objectMode: false });
}

async function* chunks(
  objects: () => Promise<ObjectStore>,
  name: string,
  stallMs: number,
): AsyncGenerator<Buffer> {
  const obj = await (await objects()).get(name);
  if (!obj) throw new BodyGoneError(name);
  // The library's `error` promise rejects (despite its type, which says it resolves to an error) when the read
  // loop failed; either way it settles once the loop is over.
  const loopError = obj.error.then(
    (err) => err ?? undefined,
    (err: unknown) => err as Error,
  );
  const loopOver = loopError.then((): Interrupt => 'loop over');
  const reader = obj.data.getReader();
  let finished = false;
  let received = 0;
  try {
    for (;;) {
      const pending = reader.read();
      let timer: NodeJS.Timeout | undefined;
      const stalled = new Promise<Interrupt>((resolve) => {
        timer = setTimeout(() => resolve('stalled'), stallMs);
      });
      let next = await Promise.race([pending, loopOver, stalled]).finally(() => clearTimeout(timer));
      if (next === 'loop over') {
        // Whatever the loop enqueued, or its close, is readable within this turn's microtasks; a read still
        // waiting after them means the loop stopped without closing the stream.
        next = await Promise.race([pending, new Promise<Interrupt>((r) => setImmediate(r, 'loop over'))]);
        if (next === 'loop over') {
          throw (
            (await loopError) ?? new BodyReadError(`object ${name}: the read ended before the object did`)
          );
        }
      }
      if (typeof next === 'string')
        throw new BodyReadError(`object ${name}: no data from the body store for ${stallMs} ms`);
      if (next.done) break;
      received += next.value.byteLength;
      yield Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    }
    finished = true;
    const err = await loopError;
    if (err) throw err;
    if (received !== obj.info.size) {
      throw new BodyReadError(`object ${name}: read ${received} of ${obj.info.size} bytes`);
    }
  } finally {
    // Stops the library's consumer when the read is abandoned (an error, or the reader destroyed the stream).
    // Cancelling a stream that already errored rejects with that same error, which is being thrown already.
    if (!finished) await reader.cancel().catch(() => undefined);
  }
}
