/**
 * Handling one accepted message from SUBMIT: route its recipients (router.ts), then the lifecycle's `submitted`
 * transition records the message state and publishes one job per destination and the events. The caller acks
 * the submission only after this resolves, so a crash at any point redelivers it; every step is idempotent
 * (the state is created once, every publish carries a Nats-Msg-Id).
 */

import { planDelivery } from '../common/router.ts';
import type { Envelope } from '../common/types.ts';
import { applyEvent } from './apply.ts';
import type { QueueContext } from './context.ts';

export async function handleSubmission(ctx: QueueContext, env: Envelope, attached?: Buffer): Promise<void> {
  const suppressedNow = await ctx.suppression.suppressed(env.to);
  const plan = planDelivery(env, ctx.config.snapshot(), (r) => suppressedNow.has(r));
  const t = await applyEvent(
    ctx,
    env.id,
    { kind: 'submitted', envelope: env, plan, at: new Date() },
    attached,
  );
  const suppressed = Object.values(t.message?.final ?? {}).filter((f) => f.result === 'suppressed').length;
  ctx.metrics.recipientsFinal.inc({ result: 'suppressed' }, suppressed);
  ctx.metrics.dsnSent.inc(t.dsnSent);
  ctx.log.debug({ messageId: env.id, jobs: t.jobs.length, suppressed }, 'message routed');
  if (env.hold) ctx.log.info({ messageId: env.id, why: env.hold }, 'message put on hold at receipt');
}
