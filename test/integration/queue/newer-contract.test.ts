/**
 * A rolling upgrade: a newer release publishes under a contract version this build does not know. The queue must
 * not terminate such a submission as malformed (that would lose accepted mail); it hands it back for an upgraded
 * replica, again and again, while a malformed one is terminated. Real nats-server, real queue.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { msgIds } from '../../../services/common/msg-ids.ts';
import { STREAMS, SUBJECTS } from '../../../services/common/nats.ts';
import { CONTRACT_VERSION } from '../../../services/common/types.ts';
import { eventually, policy, type QueueHarness, startHarness } from './harness.ts';

describe('queue: a submission of a newer contract version waits for an upgraded replica', () => {
  let h: QueueHarness;
  before(async () => {
    h = await startHarness({ policies: { 'mail.test': policy() } });
  });
  after(async () => {
    await h?.close();
  });

  const envelope = (id: string) => ({
    id,
    from: 'alice@corp.test',
    to: ['bob@one.example'],
    receivedAt: new Date().toISOString(),
    client: { address: '127.0.0.1', helo: 'client.test', tls: false },
    size: 5,
    body: { inline: 'SGVsbG8=' },
    policy: 'mail.test',
  });

  it('is handed back (redelivered, still stored), never terminated; a malformed one is terminated', async () => {
    // The server's advisory for every message a consumer terminated: which stream sequences were.
    const terminated: number[] = [];
    const advisories = h.nc.subscribe(
      `$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.${STREAMS.submit}.queue-submit`,
      {
        callback: (_e, m) => {
          terminated.push(m.json<{ stream_seq: number }>().stream_seq);
        },
      },
    );
    await h.nc.flush();
    const newer = await h.js.publish(
      SUBJECTS.submit(0),
      JSON.stringify({ ...envelope('v-next'), v: CONTRACT_VERSION + 1, somethingNew: true }),
      { msgID: msgIds.submission('v-next') },
    );
    const broken = await h.js.publish(SUBJECTS.submit(0), JSON.stringify({ ...envelope('v-bad'), to: [] }), {
      msgID: msgIds.submission('v-bad'),
    });
    const stored = (seq: number) =>
      h.jsm.streams.getMessage(STREAMS.submit, { seq }).then(
        () => true,
        () => false,
      );
    // Offered at least twice (the nak's delay passed) while still in the work queue: not acked, not terminated.
    await eventually(
      'the newer submission offered again',
      async () => (await h.jsm.consumers.info(STREAMS.submit, 'queue-submit')).num_redelivered >= 1,
    );
    assert.equal(await stored(newer.seq), true, 'the newer submission is still stored');
    await eventually('the malformed submission terminated', () => terminated.includes(broken.seq));
    assert.ok(!terminated.includes(newer.seq), 'the newer submission was not terminated');
    advisories.unsubscribe();
    assert.equal(await h.readState('v-next'), undefined, 'nothing was routed from it');
    assert.equal(h.jobs.filter((j) => j.job.messageId === 'v-next').length, 0);
    // An upgraded replica would take it; here it is removed so nothing keeps cycling (and the terminated one too).
    await h.jsm.streams.deleteMessage(STREAMS.submit, newer.seq);
    await h.jsm.streams.deleteMessage(STREAMS.submit, broken.seq).catch(() => false);
  });
});
