/**
 * Handling one DeliveryResult from RESULTS: the lifecycle's `attempted` transition schedules the next attempt for
 * deferred recipients, bounces failed and expired ones (one DSN per job attempt), feeds the suppression list and
 * emits events — all acknowledged before the message state records the attempt — and completes the message when
 * its last job is final. A crash in between redelivers the result, which recomputes the same outputs (deduplicated
 * by Nats-Msg-Id) and then records them; a result already recorded changes nothing and is only acknowledged.
 */

import { destinationKey } from '../common/router.ts';
import type { DeliveryResult } from '../common/types.ts';
import { applyEvent } from './apply.ts';
import type { QueueContext } from './context.ts';

export async function handleResult(
  ctx: QueueContext,
  result: DeliveryResult,
  attached?: Buffer,
): Promise<void> {
  const { job } = result;
  const t = await applyEvent(ctx, job.messageId, { kind: 'attempted', result, at: new Date() }, attached);
  const d = t.decision;
  if (!d) {
    ctx.log.debug(
      { messageId: job.messageId, jobId: job.jobId, attempt: job.attempt },
      t.write === 'delete' ? 'stale result: completed message cleaned up' : 'stale result ignored',
    );
    return;
  }
  const m = ctx.metrics;
  m.recipientsFinal.inc({ result: 'delivered' }, d.delivered.length);
  m.recipientsFinal.inc({ result: 'bounced' }, d.failed.length);
  m.recipientsFinal.inc({ result: 'expired' }, d.expired.length);
  m.bounces.inc({ type: 'hard' }, d.failed.length);
  m.bounces.inc({ type: 'soft' }, d.expired.length);
  if (d.next) {
    m.deferred.inc({ pool: job.pool });
    m.siteDeferrals.inc({ site: m.siteLabel(destinationKey(job.route)) });
  }
  m.dsnSent.inc(t.dsnSent);
  // Delivery already logs every attempt's outcome at info; here only what changes the plan is worth info.
  const eventful = d.next !== undefined || d.failed.length > 0 || d.expired.length > 0;
  ctx.log[eventful ? 'info' : 'debug'](
    {
      messageId: job.messageId,
      jobId: job.jobId,
      attempt: job.attempt,
      delivered: d.delivered.length,
      failed: d.failed.length,
      expired: d.expired.length,
      deferred: d.next?.job.recipients.length ?? 0,
      ...(d.next ? { nextAttemptAt: d.next.due.toISOString() } : {}),
      ...(t.write === 'delete' ? { complete: true } : {}),
    },
    'attempt recorded',
  );
}
