/**
 * The checks object-stream.ts adds to @nats-io/obj's read, for the endings a real server does not produce on
 * demand: the library's read loop over with the stream left open, and a stream that closes short of the size.
 * The ObjectResult here is built by hand to the shape `ObjectStore.get` returns (lib/objectstore.js).
 */
import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type { ObjectResult, ObjectStore } from '@nats-io/obj';
import { objectStream } from '../../../services/common/object-stream.ts';

/** An object of `size` bytes whose read yields `chunks`, then closes (or not), and whose loop ends with `error`. */
function store(opts: { size: number; chunks: Uint8Array[]; close: boolean; error?: Error }): ObjectStore {
  const result = {
    info: { size: opts.size },
    data: new ReadableStream<Uint8Array>({
      start(c) {
        for (const chunk of opts.chunks) c.enqueue(chunk);
        if (opts.close) c.close();
      },
    }),
    error: opts.error ? Promise.reject(opts.error) : Promise.resolve(null),
  } as unknown as ObjectResult;
  result.error.catch(() => undefined);
  return { get: async () => result } as unknown as ObjectStore;
}

async function read(stream: Readable): Promise<{ bytes: number; ended: boolean; error?: Error }> {
  let bytes = 0;
  let ended = false;
  stream.on('end', () => {
    ended = true;
  });
  try {
    for await (const c of stream) bytes += (c as Buffer).length;
  } catch (err) {
    return { bytes, ended, error: err as Error };
  }
  return { bytes, ended };
}

const bytes = (n: number) => new Uint8Array(n).fill(0x61);

describe('object-store body streams never end short', () => {
  it('a whole object ends cleanly', async () => {
    const s = store({ size: 30, chunks: [bytes(10), bytes(20)], close: true });
    assert.deepEqual(await read(objectStream(async () => s, 'o', 1000)), { bytes: 30, ended: true });
  });

  it("the library's loop over with the stream still open: an error at once, not a wait", async () => {
    const s = store({ size: 30, chunks: [bytes(10)], close: false });
    const r = await read(objectStream(async () => s, 'o', 60_000));
    assert.equal(r.bytes, 10);
    assert.equal(r.ended, false);
    assert.match(r.error?.message ?? '', /the read ended before the object did/);
  });

  it("the library's loop failed: its error", async () => {
    const s = store({ size: 30, chunks: [bytes(10)], close: false, error: new Error('consumer deleted') });
    const r = await read(objectStream(async () => s, 'o', 60_000));
    assert.equal(r.ended, false);
    assert.match(r.error?.message ?? '', /consumer deleted/);
  });

  it('a stream that closes short of the object size: an error', async () => {
    const s = store({ size: 30, chunks: [bytes(10)], close: true });
    const r = await read(objectStream(async () => s, 'o', 1000));
    assert.equal(r.ended, false);
    assert.match(r.error?.message ?? '', /read 10 of 30 bytes/);
  });
});
