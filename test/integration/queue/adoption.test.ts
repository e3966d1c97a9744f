/**
 * The queue adopting a direct job's message (the lean path of docs/architecture.md): ingress routed it and
 * delivery tried it without any queue state; the first result that did not deliver every recipient reaches the
 * queue with the body, and from then on the message is queued like any other. Real nats-server, real queue.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { resultWire } from '../../../services/common/body-wire.ts';
import { msgIds } from '../../../services/common/msg-ids.ts';
import { SUBJECTS } from '../../../services/common/nats.ts';
import type { DeliveryJob, DeliveryResult, RecipientOutcome } from '../../../services/common/types.ts';
import { bodyText, eventually, policy, type QueueHarness, startHarness } from './harness.ts';

const deferred = { status: 'deferred' as const, response: '451 4.3.0 try again later' };
const delivered = { status: 'delivered' as const, response: '250 2.0.0 ok' };

/**
 * A job as ingress publishes it for a single-route message (services/common/submit.ts), its body attached
 * (`legacyInline`: base64 in the JSON, as releases before 2026-11-27 wrote it).
 */
function directJob(id: string, recipients: string[], legacyInline = false): DeliveryJob & { raw: Buffer } {
  const receivedAt = new Date().toISOString();
  const raw = Buffer.from(`Subject: test ${id}\r\n\r\nhello\r\n`);
  return {
    raw,
    jobId: `${id}.0`,
    messageId: id,
    attempt: 1,
    from: 'alice@corp.test',
    recipients,
    route: { kind: 'mx', domain: 'one.example', tls: 'opportunistic' },
    pool: 'default',
    body: legacyInline ? { inline: raw.toString('base64') } : { attached: raw.length },
    receivedAt,
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    retry: { scheduleMs: [500], maxLifetimeMs: 3_600_000 },
    kind: 'mail',
    policy: 'mail/test',
    direct: true,
  };
}

describe('queue: adopting the message of a direct job from its first result', () => {
  let h: QueueHarness;
  before(async () => {
    h = await startHarness({ policies: { 'mail.test': policy() } });
  });
  after(async () => {
    await h?.close();
  });

  /** Publishes a direct job's result as delivery does: with the body; `msgID` defaults to the attempt's. */
  const report = async (
    job: DeliveryJob & { raw: Buffer },
    outcomes: Omit<RecipientOutcome, 'recipient'>[],
    msgID?: string,
  ) => {
    const { body, raw, ...rest } = job;
    const result: DeliveryResult = {
      job: rest,
      outcomes: outcomes.map((o, i) => ({ recipient: job.recipients[i]!, ...o })),
      attemptedAt: new Date().toISOString(),
      durationMs: 1,
      body,
    };
    const { payload, headers } = resultWire(result, 'attached' in body ? raw : undefined);
    await h.js.publish(SUBJECTS.result(job.pool), payload, {
      msgID: msgID ?? msgIds.result(job.jobId, job.attempt),
      ...(headers ? { headers } : {}),
    });
  };

  it('a deferral creates the state; the retry is an ordinary job; its delivery completes the message', async () => {
    const job = directJob('x1', ['a@one.example', 'b@one.example']);
    await report(job, [delivered, deferred]);
    const state = await eventually('state adopted', async () => {
      const s = await h.readState('x1');
      return s?.jobs['x1.0']?.status === 'deferred' ? s : undefined;
    });
    assert.equal(state.jobs['x1.0']?.attempt, 2);
    assert.equal(state.final['a@one.example']?.result, 'delivered');
    assert.equal(state.jobs['x1.0']?.job.direct, undefined);
    assert.deepEqual(state.body, { attached: job.raw.length }, 'the body kept raw in the state entry');
    const kinds = h.events.filter((e) => e.messageId === 'x1').map((e) => e.kind);
    assert.equal(kinds[0], 'received', `the received event first: ${kinds.join(',')}`);
    assert.ok(kinds.includes('delivered') && kinds.includes('deferred'), kinds.join(','));
    const second = await h.jobFor('x1', 2);
    assert.equal(second.job.direct, undefined);
    assert.deepEqual(second.job.recipients, ['b@one.example']);
    assert.deepEqual(second.attached, job.raw, 'the retry carries the body attached, byte for byte');
    await h.report(second.job, [delivered]);
    await eventually('message complete', async () => (await h.readState('x1')) === undefined);

    // The first result again (a redelivery that escaped the duplicate window): the message completed, so no
    // state comes back and no attempt is scheduled again.
    await report(job, [delivered, deferred], 'x1-redelivered');
    await h.settled();
    assert.equal(await h.readState('x1'), undefined);
    assert.equal(h.jobs.filter((s) => s.job.messageId === 'x1' && s.job.attempt === 2).length, 1);
  });

  it('a bounce is settled by the adopting result itself: a DSN, and no state left', async () => {
    const job = directJob('x2', ['gone@one.example']);
    await report(job, [{ status: 'failed', response: '550 5.1.1 no such user', enhanced: '5.1.1' }]);
    const dsn = await eventually('bounce DSN', () =>
      h.submitted.find((e) => e.kind === 'dsn' && e.id.startsWith('x2')),
    );
    assert.match(bodyText(dsn), /Final-Recipient: rfc822; gone@one\.example/);
    await eventually('bounced event', () =>
      h.events.find((e) => e.kind === 'bounced' && e.messageId === 'x2'),
    );
    assert.equal(await h.readState('x2'), undefined);
    assert.ok(h.events.some((e) => e.kind === 'received' && e.messageId === 'x2'));
  });
  it('a result written by an older release (body inline base64) is adopted, and its retry keeps that body', async () => {
    const job = directJob('x3', ['c@one.example'], true);
    await report(job, [deferred]);
    const second = await h.jobFor('x3', 2);
    assert.match(bodyText(second.job), /Subject: test x3/);
    await h.report(second.job, [delivered]);
    await eventually('message complete', async () => (await h.readState('x3')) === undefined);
  });
});
