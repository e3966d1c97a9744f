/**
 * Object-store bodies read as streams (services/common/body-store.ts, object-stream.ts) against a real
 * nats-server: byte-exact, chunk by chunk; a body gone, cut short or stuck fails the stream with an error —
 * never a clean end a sender would take for the whole message.
 */
import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { type BodySource, BodyStore } from '../../../services/common/body-store.ts';
import { connectNats, ensureTopology } from '../../../services/common/nats.ts';
import { dropLastChunk, largeMessage, purgeChunks, sha256 } from '../../helpers/large-body.ts';
import { startTestNats, type TestNats } from '../../helpers/nats.ts';

/** Reads a stream to its end; the chunk count shows it came in pieces. */
async function readAll(stream: Readable): Promise<{ data: Buffer; chunks: number }> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return { data: Buffer.concat(parts), chunks: parts.length };
}

function factory(source: BodySource): () => Readable {
  assert.equal(typeof source, 'function', 'an object-store body is a stream factory');
  return source as () => Readable;
}

describe('object-store bodies as streams', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let bodies: BodyStore;
  before(async () => {
    nats = await startTestNats();
    nc = await connectNats(nats.url, 'body-store-test');
    await ensureTopology(nc);
    bodies = new BodyStore(nc, { stallMs: 500 });
  });
  after(async () => {
    await nc?.close();
    await nats?.cleanup();
  });

  it('a 5 MiB body streams byte-exact, in chunks, as often as it is opened', async () => {
    const raw = largeMessage(5 * 1024 * 1024);
    const ref = await bodies.put('big-stream', raw, 10_000);
    assert.ok('object' in ref, 'a body above the max payload goes to the object store');
    const open = factory(await bodies.source(ref));
    const first = await readAll(open());
    assert.equal(sha256(first.data), sha256(raw));
    assert.ok(first.chunks > 1, 'read in chunks, not one blob');
    assert.equal(sha256((await readAll(open())).data), sha256(raw), 'a second read gets the same bytes');
  });

  it('bodies up to the max payload stay one buffer', async () => {
    const raw = largeMessage(100_000);
    const ref = await bodies.put('small-stream', raw, 10_000);
    assert.ok('stored' in ref);
    assert.deepEqual(await bodies.source(ref), raw);
  });

  it('a deleted object: BodyGoneError when opening it', async () => {
    const ref = await bodies.put('deleted-stream', largeMessage(2 * 1024 * 1024), 10_000);
    await bodies.delete(ref);
    await assert.rejects(bodies.source(ref), { code: 'EBODYGONE' });
  });

  it('an object deleted after the check: the stream fails with BodyGoneError', async () => {
    const ref = await bodies.put('deleted-later', largeMessage(2 * 1024 * 1024), 10_000);
    const open = factory(await bodies.source(ref));
    await bodies.delete(ref);
    await assert.rejects(readAll(open()), { code: 'EBODYGONE' });
  });

  it('an object missing its last chunk: the stream errors after the bytes it had, it does not end', async () => {
    const raw = largeMessage(3 * 1024 * 1024);
    const ref = await bodies.put('short-stream', raw, 10_000);
    await dropLastChunk(nc, bodies, 'short-stream');
    const stream = factory(await bodies.source(ref))();
    let received = 0;
    let ended = false;
    stream.on('end', () => {
      ended = true;
    });
    await assert.rejects(
      (async () => {
        for await (const c of stream) received += (c as Buffer).length;
      })(),
      /digests do not match/,
    );
    assert.ok(received > 0 && received < raw.length, `part of the body came first (${received} bytes)`);
    assert.equal(ended, false, 'never a clean end');
  });

  it('an object whose chunks are all gone: the read fails after the stall limit instead of hanging', async () => {
    const ref = await bodies.put('stuck-stream', largeMessage(2 * 1024 * 1024), 10_000);
    await purgeChunks(nc, bodies, 'stuck-stream');
    const open = factory(await bodies.source(ref));
    await assert.rejects(readAll(open()), { code: 'EBODYREAD', message: /no data from the body store/ });
  });
});
