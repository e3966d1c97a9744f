/**
 * What happens to a webhook event after one attempt (pure; table-tested in test/unit/webhooks/decision.test.ts):
 * a 2xx acks it; anything else retries after a doubling delay — unless the next attempt would fall after the
 * event's age reaches the endpoint's maxLifetime, which dead-letters it (like the queue's expiry: the lifetime
 * counts from when the event was stored, not from the first attempt).
 */
import type { WebhookConfig } from '../common/config/webhook.ts';

export type AttemptResult = 'delivered' | 'failed' | 'timeout' | 'error';

export type Decision = { action: 'ack' } | { action: 'retry'; delayMs: number } | { action: 'dead-letter' };

/** The delay before attempt `attempt + 1`: initialDelay × 2^(attempt-1), capped at maxDelay. */
export function backoffMs(
  attempt: number,
  cfg: Pick<WebhookConfig, 'initialDelayMs' | 'maxDelayMs'>,
): number {
  return Math.min(cfg.maxDelayMs, cfg.initialDelayMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
}

/**
 * @param attempt 1 for the first delivery (JetStream's delivery count).
 * @param ageMs how long ago the event was stored in EVENTS.
 */
export function decide(
  result: AttemptResult,
  attempt: number,
  ageMs: number,
  cfg: Pick<WebhookConfig, 'initialDelayMs' | 'maxDelayMs' | 'maxLifetimeMs'>,
): Decision {
  if (result === 'delivered') return { action: 'ack' };
  const delayMs = backoffMs(attempt, cfg);
  return ageMs + delayMs > cfg.maxLifetimeMs ? { action: 'dead-letter' } : { action: 'retry', delayMs };
}
