/**
 * Operator actions on the queue (like postqueue/postsuper): list, inspect, drop, retry now, hold, release. They work on the
 * message state in KV and on the deferred jobs' message schedules in OUTBOUND.
 */

import { destinationKey } from '../common/router.ts';
import { tlsSummary } from '../common/tls-summary.ts';
import { applyEvent } from './apply.ts';
import type { QueueContext } from './context.ts';
import { type MessageState, readState, stateKey } from './state.ts';

/** A message as the admin API shows it. */
export interface QueueEntry {
  id: string;
  from: string;
  receivedAt: string;
  ageSeconds: number;
  jobs: {
    jobId: string;
    status: string;
    attempt: number;
    pool: string;
    destination: string;
    recipients: string[];
    nextAttemptAt?: string;
    lastResponse?: string;
    /** The last attempt's TLS (TlsFacts) and the same as one line. */
    lastTls?: MessageState['jobs'][string]['lastTls'];
    lastTlsSummary?: string;
  }[];
  final: MessageState['final'];
}

export function toEntry(s: MessageState, now = Date.now()): QueueEntry {
  return {
    id: s.id,
    from: s.from,
    receivedAt: s.receivedAt,
    ageSeconds: Math.max(0, Math.round((now - Date.parse(s.receivedAt)) / 1000)),
    jobs: Object.entries(s.jobs).map(([jobId, j]) => ({
      jobId,
      status: j.status,
      attempt: j.attempt,
      pool: j.job.pool,
      destination: destinationKey(j.job.route),
      recipients: j.job.recipients,
      ...(j.nextAttemptAt ? { nextAttemptAt: j.nextAttemptAt } : {}),
      ...(j.lastResponse ? { lastResponse: j.lastResponse } : {}),
      ...(j.lastTls ? { lastTls: j.lastTls, lastTlsSummary: tlsSummary(j.lastTls) } : {}),
    })),
    final: s.final,
  };
}

/** Lists queued messages (bounded by `limit`), optionally filtered by sender or recipient domain. */
export async function listQueue(
  ctx: QueueContext,
  filter: { from?: string; domain?: string; limit: number },
): Promise<QueueEntry[]> {
  const out: QueueEntry[] = [];
  const keys = await ctx.state.keys();
  for await (const key of keys) {
    if (out.length >= filter.limit) {
      keys.stop();
      break;
    }
    const s = (await readState(ctx.state, key))?.state;
    if (!s) continue;
    if (filter.from && s.from.toLowerCase() !== filter.from.toLowerCase()) continue;
    const domain = filter.domain?.toLowerCase();
    if (
      domain &&
      !Object.values(s.jobs).some((j) => j.job.recipients.some((r) => r.toLowerCase().endsWith(`@${domain}`)))
    ) {
      continue;
    }
    out.push(toEntry(s));
  }
  return out;
}

export async function getQueued(ctx: QueueContext, id: string): Promise<QueueEntry | undefined> {
  const s = (await readState(ctx.state, stateKey(id)))?.state;
  return s ? toEntry(s) : undefined;
}

/**
 * Operator actions, each one lifecycle transition (lifecycle.ts): drop (postsuper -d: pending jobs final, schedules
 * purged, body and state deleted), retry now (postqueue -i: deferred jobs due now), hold (postsuper -h) and release
 * (postsuper -H). Each returns the jobs it affected, or undefined when the message is not queued.
 */
async function act(
  ctx: QueueContext,
  id: string,
  action: 'hold' | 'release' | 'retry-now' | 'delete',
): Promise<string[] | undefined> {
  const t = await applyEvent(ctx, id, { kind: action, at: new Date() });
  if (!t.previous) return undefined;
  ctx.log.info({ messageId: id, jobs: t.jobs, action }, 'queue action by operator');
  return t.jobs;
}

export const dropMessage = async (ctx: QueueContext, id: string) =>
  (await act(ctx, id, 'delete')) !== undefined;
export const retryNow = (ctx: QueueContext, id: string) => act(ctx, id, 'retry-now');
export const holdMessage = (ctx: QueueContext, id: string) => act(ctx, id, 'hold');
export const releaseMessage = (ctx: QueueContext, id: string) => act(ctx, id, 'release');
