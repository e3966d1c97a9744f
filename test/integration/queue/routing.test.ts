import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, policy, type QueueHarness, startHarness } from './harness.ts';

describe('queue: submissions become delivery jobs', () => {
  let h: QueueHarness;
  before(async () => {
    h = await startHarness({
      domains: [
        {
          source: 'mail/local',
          domain: 'local.test',
          inbound: {
            enabled: true,
            deliverTo: { host: '127.0.0.5', port: 2424, protocol: 'lmtp', tls: 'none' },
          },
        },
      ],
      policies: {
        'mail.mx': policy({ pool: 'bulk' }),
        'mail.smart': policy({ smarthost: { host: '127.0.0.9', port: 2526, tls: 'none' } }),
      },
    });
  });
  after(async () => {
    await h?.close();
  });

  it('publishes one job per destination (mailbox, MX per domain) in the policy pool, then acks the submission', async () => {
    await h.submit({ id: 'r1', to: ['a@one.example', 'bob@local.test', 'c@one.example'], policy: 'mail.mx' });
    await h.settled();
    const jobs = h.jobs
      .filter((s) => s.job.messageId === 'r1')
      .sort((a, b) => a.job.jobId.localeCompare(b.job.jobId));
    assert.deepEqual(
      jobs.map((s) => [s.subject, s.job.route.kind, s.job.recipients]),
      [
        ['mail.out.bulk.one_2eexample', 'mx', ['a@one.example', 'c@one.example']],
        ['mail.out.bulk.127_2e0_2e0_2e5_3a2424', 'mailbox', ['bob@local.test']],
      ],
    );
    const info = await h.jsm.streams.info('SUBMIT');
    assert.equal(info.state.messages, 0, 'the submission was acked (removed from the work queue)');
    const state = await h.readState('r1');
    assert.deepEqual(Object.keys(state!.jobs).sort(), ['r1.0', 'r1.1']);
    assert.ok(h.events.some((e) => e.kind === 'received' && e.messageId === 'r1'));
  });

  it('routes relayed mail through the smarthost of the policy', async () => {
    await h.submit({ id: 'r2', to: ['x@far.example', 'y@other.example'], policy: 'mail.smart' });
    const { job, subject } = await h.jobFor('r2');
    assert.equal(subject, 'mail.out.default.127_2e0_2e0_2e9_3a2526');
    assert.deepEqual(job.recipients, ['x@far.example', 'y@other.example']);
  });

  it('a redelivered submission (crash before its ack) publishes no duplicate jobs', async () => {
    // The same envelope again under another Nats-Msg-Id is what a redelivery after a crash looks like.
    await h.submit({ id: 'r3', to: ['a@one.example', 'b@two.example'], policy: 'mail.mx' });
    await h.submit(
      { id: 'r3', to: ['a@one.example', 'b@two.example'], policy: 'mail.mx' },
      'submit.r3.again',
    );
    await h.settled();
    const info = await h.jsm.streams.info('SUBMIT');
    assert.equal(info.state.messages, 0, 'both copies were processed');
    const jobs = h.jobs
      .filter((s) => s.job.messageId === 'r3')
      .map((s) => `${s.job.jobId}.a${s.job.attempt}`);
    assert.deepEqual(jobs.sort(), ['r3.0.a1', 'r3.1.a1']);
  });

  it('terminates a malformed submission instead of retrying it forever', async () => {
    await h.js.publish('mail.submit.0', 'not json', { msgID: 'garbage-1' });
    await h.settled();
    assert.equal((await h.jsm.streams.info('SUBMIT')).state.messages, 0);
  });

  it('exports the depth of its consumers', async () => {
    await eventually('queue depth metric', async () =>
      /postern_queue_depth\{stream="SUBMIT",consumer="queue-submit"\} 0/.test(await h.registry.metrics()),
    );
  });
});
