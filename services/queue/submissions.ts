/**
 * Handling one accepted message from SUBMIT: route its recipients, record the message state, publish one job
 * per destination and the 'received' event. The caller acks the submission only after this resolves, so a
 * crash at any point redelivers it; every step is idempotent (create-or-keep state, Nats-Msg-Id on publishes).
 */
import { suppressionOccurrence } from '../common/msg-ids.ts';
import type { Envelope } from '../common/types.ts';
import { deleteBody } from './body.ts';
import { sendDsn } from './bounces.ts';
import type { QueueContext } from './context.ts';
import { publishEvent, publishJob } from './outputs.ts';
import { planDelivery } from './router.ts';
import { createOrKeepState, jobWithBody, type MessageState, stateKey } from './state.ts';

/** Local reason recorded for recipients on the suppression list. */
export const SUPPRESSED_RESPONSE = '550 5.1.1 recipient suppressed after a recent hard bounce';

export async function handleSubmission(ctx: QueueContext, env: Envelope): Promise<void> {
  const suppressedNow = await ctx.suppression.suppressed(env.to);
  const plan = planDelivery(env, ctx.config.snapshot(), (r) => suppressedNow.has(r));
  const now = new Date().toISOString();
  const planned: MessageState = {
    id: env.id,
    from: env.from,
    receivedAt: env.receivedAt,
    kind: env.kind ?? 'mail',
    body: env.body,
    jobs: Object.fromEntries(
      plan.jobs.map((job) => {
        const { body: _body, ...stored } = job;
        return [job.jobId, { status: 'active', attempt: 1, job: stored }];
      }),
    ),
    final: Object.fromEntries(
      plan.suppressed.map((r) => [r, { result: 'suppressed', response: SUPPRESSED_RESPONSE, at: now }]),
    ),
  };
  // A redelivered submission finds the state written the first time and republishes exactly those jobs.
  const state =
    plan.jobs.length > 0 ? await createOrKeepState(ctx.state, stateKey(env.id), planned) : planned;
  const firstAttempt = Object.values(state.jobs).filter((j) => j.status === 'active' && j.attempt === 1);
  await Promise.all(firstAttempt.map((j) => publishJob(ctx.js, jobWithBody(state, j))));

  const suppressed = Object.entries(state.final).filter(([, f]) => f.result === 'suppressed');
  if (suppressed.length > 0) {
    const recipients = suppressed.map(([r]) => r);
    await publishEvent(
      ctx.js,
      {
        kind: 'suppressed',
        messageId: env.id,
        at: now,
        from: env.from,
        recipients,
        response: SUPPRESSED_RESPONSE,
      },
      suppressionOccurrence(env.id),
    );
    const sent = await sendDsn(
      ctx,
      state,
      suppressionOccurrence(env.id),
      0,
      recipients.map((recipient) => ({
        recipient,
        status: '5.1.1',
        reason: 'suppressed',
        diagnostic: SUPPRESSED_RESPONSE,
      })),
    );
    if (sent) ctx.metrics.dsnSent.inc();
  }
  await publishEvent(
    ctx.js,
    { kind: 'received', messageId: env.id, at: now, from: env.from, recipients: env.to },
    env.id,
  );
  // Every recipient suppressed: nothing will ever read the body again.
  if (Object.keys(state.jobs).length === 0) await deleteBody(ctx.bodies, env.body);
  ctx.metrics.recipientsFinal.inc({ result: 'suppressed' }, suppressed.length);
  ctx.log.debug(
    { messageId: env.id, jobs: firstAttempt.length, suppressed: suppressed.length },
    'message routed',
  );
}
