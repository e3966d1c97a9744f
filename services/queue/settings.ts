/** Queue settings from the environment (local mode and the chart set these; see docs/queue.md). */
import { hostname } from 'node:os';
import { parseDuration } from '../common/durations.ts';

export interface QueueSettings {
  /** Reporting-MTA and MAILER-DAEMON domain of DSNs. */
  hostname: string;
  /** How long a hard-bounced (unknown) address stays suppressed. */
  suppressionTtlMs: number;
  /** Admin HTTP API listen address; port 0 = any free port. */
  adminHost: string;
  adminPort: number;
  /** Pull batch size and concurrent handlers per consumer. */
  maxMessages: number;
  concurrency: number;
  /** Queue depth metrics poll interval. */
  depthIntervalMs: number;
  /** Redelivery delay for a message whose handling failed (e.g. NATS briefly unavailable). */
  retryDelayMs: number;
  /** Ack wait of the queue's consumers. */
  ackWaitMs: number;
  /** How long the purge marker of a finished message's state lives (a late result then finds nothing either way). */
  stateMarkerTtlMs: number;
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

export function readQueueSettings(env: NodeJS.ProcessEnv = process.env): QueueSettings {
  return {
    hostname: env['POSTERN_HOSTNAME'] || hostname(),
    suppressionTtlMs: parseDuration(env['POSTERN_SUPPRESSION_TTL'] || '7d'),
    adminHost: env['POSTERN_ADMIN_HOST'] || '127.0.0.1',
    adminPort: positiveInt(env, 'POSTERN_ADMIN_PORT', 0),
    maxMessages: positiveInt(env, 'POSTERN_QUEUE_MAX_MESSAGES', 256) || 256,
    concurrency: positiveInt(env, 'POSTERN_QUEUE_CONCURRENCY', 64) || 64,
    depthIntervalMs: parseDuration(env['POSTERN_QUEUE_METRICS_INTERVAL'] || '5s'),
    retryDelayMs: parseDuration(env['POSTERN_QUEUE_RETRY_DELAY'] || '2s'),
    ackWaitMs: parseDuration(env['POSTERN_QUEUE_ACK_WAIT'] || '30s'),
    stateMarkerTtlMs: Math.max(1000, parseDuration(env['POSTERN_STATE_MARKER_TTL'] || '5m')),
  };
}
