/** Dispatcher settings from the environment (local mode and the chart set these; see docs/api.md "Webhooks"). */
import { parseDuration } from '../common/durations.ts';

export interface WebhookSettings {
  /** Requests in flight per endpoint. */
  concurrency: number;
  /** Events delivered-but-unacknowledged or waiting for a retry, per endpoint (the consumer's max_ack_pending). */
  maxPending: number;
  /** How often each endpoint's backlog is read for `postern_webhook_pending`. */
  pendingIntervalMs: number;
}

function count(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number ≥ 1, got "${raw}"`);
  return n;
}

export function readWebhookSettings(env: NodeJS.ProcessEnv = process.env): WebhookSettings {
  return {
    concurrency: count(env, 'POSTERN_WEBHOOK_CONCURRENCY', 8),
    maxPending: count(env, 'POSTERN_WEBHOOK_MAX_PENDING', 1000),
    pendingIntervalMs: parseDuration(env['POSTERN_WEBHOOK_METRICS_INTERVAL'] || '5s'),
  };
}
