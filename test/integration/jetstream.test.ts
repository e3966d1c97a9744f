import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '../../services/common/nats.ts';
import { startTestNats, type TestNats } from '../helpers/nats.ts';

describe('a real JetStream server', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  before(async () => {
    nats = await startTestNats();
    nc = await connectNats(nats.url, 'jetstream-test');
  });
  after(async () => {
    await nc?.close();
    await nats?.cleanup();
  });

  it('dedupes publishes by Nats-Msg-Id, delivers to a pull consumer, honours ack and nak with delay', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'T', subjects: ['t.>'], retention: RetentionPolicy.Workqueue });
    await jsm.consumers.add('T', { durable_name: 'c', ack_policy: AckPolicy.Explicit, ack_wait: 30e9 });
    const js = jetstream(nc);

    const first = await js.publish('t.a', 'one', { msgID: 'm-1' });
    const again = await js.publish('t.a', 'one', { msgID: 'm-1' });
    assert.equal(first.duplicate, false);
    assert.equal(again.duplicate, true, 'second publish with the same Nats-Msg-Id is a duplicate');
    assert.equal(again.seq, first.seq);

    const consumer = await js.consumers.get('T', 'c');
    const m1 = await consumer.next({ expires: 5000 });
    assert.equal(m1?.string(), 'one');
    const nakAt = Date.now();
    m1!.nak(300);
    const m2 = await consumer.next({ expires: 5000 });
    assert.equal(m2?.string(), 'one', 'a nak redelivers the message');
    assert.equal(m2!.info.deliveryCount, 2);
    assert.ok(Date.now() - nakAt >= 250, 'the redelivery waited for the nak delay');
    assert.ok(await m2!.ackAck());
    const info = await jsm.streams.info('T');
    assert.equal(info.state.messages, 0, 'an acked work-queue message is removed');
  });
});
