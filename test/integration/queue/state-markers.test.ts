import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connectNats, ensureTopology, STATE_BUCKET } from '../../../services/common/nats.ts';
import { startTestNats } from '../../helpers/nats.ts';
import { eventually, policy, type QueueHarness, startHarness } from './harness.ts';

const STREAM = `KV_${STATE_BUCKET}`;
const delivered = { status: 'delivered' as const, response: '250 2.0.0 ok' };

describe('queue: KV messages keeps nothing of finished messages', () => {
  let h: QueueHarness;
  before(async () => {
    h = await startHarness({ policies: { 'mail.p': policy() } });
  });
  after(async () => {
    await h?.close();
  });

  it('a delivered message leaves no state and, once its marker expires, nothing at all in the bucket', async () => {
    const ids = ['k1', 'k2', 'k3'];
    for (const id of ids) await h.submit({ id, to: [`a@${id}.example`], policy: 'mail.p' });
    for (const id of ids) await h.report((await h.jobFor(id)).job, [delivered]);
    for (const id of ids)
      await eventually(`${id} complete`, async () => (await h.readState(id)) === undefined);
    // The harness's queue purges with a 1 s marker TTL: the soak saw one ~100-byte marker per message stay forever.
    const info = await eventually('markers expired', async () => {
      const si = await h.jsm.streams.info(STREAM);
      return si.state.messages === 0 ? si : undefined;
    });
    assert.equal(info.config.allow_msg_ttl, true);
  });
});

describe('topology: a KV messages bucket from an earlier version', () => {
  it('gets per-message TTLs from ensureTopology, so the queue can let markers expire', async () => {
    const nats = await startTestNats();
    const nc = await connectNats(nats.url, 'topology-test');
    try {
      await new Kvm(nc).create(STATE_BUCKET, { history: 1 });
      const jsm = await jetstreamManager(nc);
      assert.equal((await jsm.streams.info(STREAM)).config.allow_msg_ttl ?? false, false);
      await ensureTopology(nc, 1, 'manage');
      const { config } = await jsm.streams.info(STREAM);
      assert.equal(config.allow_msg_ttl, true);
      assert.ok((config.subject_delete_marker_ttl ?? 0) > 0);
    } finally {
      await nc.close();
      await nats.cleanup();
    }
  });
});
