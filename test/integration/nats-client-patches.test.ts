/**
 * services/common/nats-client-patches.ts against a real nats-server: requests settle exactly as before (reply,
 * no responders, timeout, JetStream publish) without the library's per-success RequestError, leave nothing in the
 * mux, and the writes of one event-loop turn leave the socket together, bytes and order unchanged.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { RequestOne } from '@nats-io/nats-core/internal';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '../../services/common/nats.ts';
import { startTestNats, type TestNats } from '../helpers/nats.ts';

/** The connection's internals the patches touch (nats-core 3.4.0). */
const internals = (nc: NatsConnection) =>
  (
    nc as unknown as {
      protocol: { transport: { socket: Socket }; muxSubscriptions: { size(): number } };
    }
  ).protocol;

describe('nats.js workarounds (real nats-server)', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let peer: NatsConnection;
  before(async () => {
    nats = await startTestNats();
    nc = await connectNats(nats.url, 'patches-test');
    peer = await connectNats(nats.url, 'patches-peer');
    peer.subscribe('echo', {
      callback: (_err, m: Msg) => {
        m.respond(m.data);
      },
    });
    await peer.flush();
  });
  after(async () => {
    await nc?.close();
    await peer?.close();
    await nats?.cleanup();
  });

  it('a successful request resolves with the reply, never through cancel(), and leaves the mux empty', async () => {
    const cancel = RequestOne.prototype.cancel;
    let cancels = 0;
    RequestOne.prototype.cancel = function (this: RequestOne, err?: Error) {
      cancels++;
      return cancel.call(this, err);
    };
    try {
      const replies = await Promise.all(
        Array.from({ length: 50 }, (_, i) => nc.request('echo', `n${i}`, { timeout: 5000 })),
      );
      assert.deepEqual(
        replies.map((r) => r.string()),
        Array.from({ length: 50 }, (_, i) => `n${i}`),
      );
      assert.equal(cancels, 0, 'no RequestError built for a success');
      assert.equal(internals(nc).muxSubscriptions.size(), 0, 'every request left the mux');
    } finally {
      RequestOne.prototype.cancel = cancel;
    }
  });

  it('failures settle as before: no responders, timeout, and a JetStream publish still gets its PubAck', async () => {
    await assert.rejects(nc.request('nobody.listens', 'x', { timeout: 5000 }), /no responders/i);
    peer.subscribe('silent', { callback: () => {} });
    await peer.flush();
    await assert.rejects(nc.request('silent', 'x', { timeout: 200 }), (err: Error) => {
      assert.match(err.name + err.message, /timeout/i);
      return true;
    });
    assert.equal(internals(nc).muxSubscriptions.size(), 0);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'PATCHES', subjects: ['patches.>'] });
    const ack = await jetstream(nc).publish('patches.a', 'body', { msgID: 'p-1' });
    assert.equal(ack.stream, 'PATCHES');
    assert.equal(ack.duplicate, false);
  });

  it('the flushes of one event-loop turn leave in one socket write, in order', async () => {
    const socket = internals(nc).transport.socket as Socket & {
      _write: (...a: unknown[]) => void;
      _writev: (...a: unknown[]) => void;
    };
    const got: string[] = [];
    const sub = peer.subscribe('order.>', {
      callback: (_e, m) => {
        got.push(m.string());
      },
    });
    await peer.flush();
    await nc.flush();
    const write = socket._write;
    const writev = socket._writev;
    let writes = 0;
    socket._write = function (...a: unknown[]) {
      writes++;
      return write.apply(this, a);
    };
    socket._writev = function (...a: unknown[]) {
      writes++;
      return writev.apply(this, a);
    };
    try {
      // Ten publishes, each after a microtask checkpoint: unpatched, each checkpoint's flush was a write of its own.
      await new Promise<void>((resolve) =>
        setImmediate(async () => {
          for (let i = 0; i < 10; i++) {
            nc.publish(`order.${i}`, `m${i}`);
            await new Promise<void>((r) => queueMicrotask(r));
            await Promise.resolve();
          }
          resolve();
        }),
      );
      await nc.flush();
      await peer.flush();
      assert.ok(writes <= 2, `the turn's ten flushes and the PING left in ${writes} writes (unpatched: 11)`);
    } finally {
      socket._write = write;
      socket._writev = writev;
      sub.unsubscribe();
    }
    assert.deepEqual(
      got,
      Array.from({ length: 10 }, (_, i) => `m${i}`),
    );
  });
});
