/**
 * What one delivery attempt means for each recipient: final (delivered / failed / expired) or deferred to a
 * next attempt on the job's retry schedule. Pure, so the schedule and expiry rules are unit-tested directly.
 */
import type { DeliveryJob, DeliveryResult, RecipientOutcome, RetryPolicy } from '../common/types.ts';

export interface AttemptDecision {
  delivered: RecipientOutcome[];
  failed: RecipientOutcome[];
  /** Deferred, but the next attempt would fall after the message's expiry: final, bounced with 4.4.7. */
  expired: RecipientOutcome[];
  /** Deferred to the next attempt (empty when they expired instead). */
  deferred: RecipientOutcome[];
  /** The next attempt for the deferred recipients, when there is one. */
  next?: { job: Omit<DeliveryJob, 'body'>; due: Date };
}

/** Delay before attempt `attempt + 1`: `scheduleMs[attempt - 1]`, the last entry repeating. */
export function retryDelayMs(retry: RetryPolicy, attempt: number): number {
  const schedule = retry.scheduleMs.length > 0 ? retry.scheduleMs : [300_000];
  return schedule[Math.min(Math.max(attempt, 1) - 1, schedule.length - 1)]!;
}

/** Classifies a result's outcomes and plans the next attempt. */
export function decideAttempt(result: DeliveryResult, now: Date): AttemptDecision {
  const { job } = result;
  const byRecipient = new Map(result.outcomes.map((o) => [o.recipient.toLowerCase(), o]));
  const decision: AttemptDecision = { delivered: [], failed: [], expired: [], deferred: [] };
  const deferred: RecipientOutcome[] = [];
  for (const recipient of job.recipients) {
    // A recipient the worker did not report on was not delivered: try it again rather than lose it.
    const outcome = byRecipient.get(recipient.toLowerCase()) ?? {
      recipient,
      status: 'deferred',
      response: '451 4.3.0 no outcome reported for this recipient',
    };
    if (outcome.status === 'delivered') decision.delivered.push(outcome);
    else if (outcome.status === 'failed') decision.failed.push(outcome);
    else deferred.push(outcome);
  }
  if (deferred.length === 0) return decision;
  const due = new Date(now.getTime() + retryDelayMs(job.retry, job.attempt));
  if (due.getTime() > Date.parse(job.expiresAt)) {
    decision.expired = deferred;
    return decision;
  }
  decision.deferred = deferred;
  decision.next = {
    job: { ...job, attempt: job.attempt + 1, recipients: deferred.map((o) => o.recipient) },
    due,
  };
  return decision;
}
