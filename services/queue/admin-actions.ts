/**
 * Operator actions on the queue (like postqueue/postsuper): list, inspect, drop, retry now, hold, release. They work on the
 * message state in KV and on the deferred jobs' message schedules in OUTBOUND.
 */

import type { JetStreamManager } from '@nats-io/jetstream';
import { msgIds } from '../common/msg-ids.ts';
import { STREAMS, SUBJECTS } from '../common/nats.ts';
import { tlsSummary } from '../common/tls-summary.ts';
import type { QueueContext } from './context.ts';
import { scheduleJob } from './outputs.ts';
import { finishMessage } from './results.ts';
import { destinationKey } from './router.ts';
import { isComplete, jobWithBody, type MessageState, readState, stateKey, updateState } from './state.ts';

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
 * Drops a message: every pending job becomes final ('dropped'), deferred jobs' schedules are purged, the body
 * and state are deleted; results that still arrive for it are then ignored as stale.
 */
export async function dropMessage(ctx: QueueContext, jsm: JetStreamManager, id: string): Promise<boolean> {
  const key = stateKey(id);
  const at = new Date().toISOString();
  const cancelled: { pool: string; jobId: string }[] = [];
  const written = await updateState(ctx.state, key, (s) => {
    cancelled.length = 0;
    for (const [jobId, j] of Object.entries(s.jobs)) {
      if (j.status === 'final') continue;
      if (j.status === 'deferred') cancelled.push({ pool: j.job.pool, jobId });
      for (const r of j.job.recipients)
        s.final[r] = { result: 'dropped', response: 'dropped by operator', at };
      s.jobs[jobId] = { ...j, status: 'final' };
    }
    return s;
  });
  if (!written) return false;
  for (const c of cancelled) {
    await jsm.streams.purge(STREAMS.outbound, { filter: SUBJECTS.scheduled(c.pool, c.jobId) });
  }
  if (isComplete(written)) await finishMessage(ctx, key, written);
  ctx.log.info({ messageId: id, cancelled: cancelled.length }, 'message dropped by operator');
  return true;
}

/**
 * Retries a message's deferred jobs now: each schedule is replaced by one due immediately (a schedule publish on
 * the same subject replaces the previous one; a past due date fires at once). Returns the jobs retried, or
 * undefined when the message is not queued.
 */
export async function retryNow(ctx: QueueContext, id: string): Promise<string[] | undefined> {
  const key = stateKey(id);
  const current = await readState(ctx.state, key);
  if (!current) return undefined;
  const now = new Date();
  const retried: string[] = [];
  for (const [jobId, j] of Object.entries(current.state.jobs)) {
    if (j.status !== 'deferred') continue;
    await scheduleJob(
      ctx.js,
      jobWithBody(current.state, j),
      now,
      msgIds.jobNow(jobId, j.attempt, 'now', now.getTime()),
    );
    retried.push(jobId);
  }
  await updateState(ctx.state, key, (s) => {
    for (const jobId of retried) {
      const j = s.jobs[jobId];
      if (j?.status === 'deferred')
        s.jobs[jobId] = { ...j, status: 'active', nextAttemptAt: now.toISOString() };
    }
    return s;
  });
  ctx.log.info({ messageId: id, jobs: retried }, 'retry requested by operator');
  return retried;
}

/**
 * Puts a message on hold (postsuper -h): deferred jobs lose their schedule and wait as 'held'; a job in flight
 * finishes its attempt, and if that attempt defers, it is held instead of scheduled. Returns the jobs affected,
 * or undefined when the message is not queued.
 */
export async function holdMessage(
  ctx: QueueContext,
  jsm: JetStreamManager,
  id: string,
): Promise<string[] | undefined> {
  const key = stateKey(id);
  if (!(await readState(ctx.state, key))) return undefined;
  const held: string[] = [];
  const unscheduled: { pool: string; jobId: string }[] = [];
  await updateState(ctx.state, key, (s) => {
    held.length = 0;
    unscheduled.length = 0;
    for (const [jobId, j] of Object.entries(s.jobs)) {
      if (j.status === 'deferred') {
        unscheduled.push({ pool: j.job.pool, jobId });
        const { nextAttemptAt: _next, ...rest } = j;
        s.jobs[jobId] = { ...rest, status: 'held' };
      } else if (j.status === 'active') s.jobs[jobId] = { ...j, hold: true };
      else continue;
      held.push(jobId);
    }
    return s;
  });
  // A schedule that fires between the state write and this purge becomes an attempt whose deferral is then
  // held too (the job's state says so): nothing is lost either way.
  for (const u of unscheduled) {
    await jsm.streams.purge(STREAMS.outbound, { filter: SUBJECTS.scheduled(u.pool, u.jobId) });
  }
  ctx.log.info({ messageId: id, jobs: held }, 'message put on hold by operator');
  return held;
}

/** Releases a held message (postsuper -H): held jobs are attempted at once, pending holds are cleared. */
export async function releaseMessage(ctx: QueueContext, id: string): Promise<string[] | undefined> {
  const key = stateKey(id);
  const current = await readState(ctx.state, key);
  if (!current) return undefined;
  const now = new Date();
  const released: string[] = [];
  for (const [jobId, j] of Object.entries(current.state.jobs)) {
    if (j.status !== 'held') continue;
    await scheduleJob(
      ctx.js,
      jobWithBody(current.state, j),
      now,
      msgIds.jobNow(jobId, j.attempt, 'release', now.getTime()),
    );
    released.push(jobId);
  }
  await updateState(ctx.state, key, (s) => {
    for (const [jobId, j] of Object.entries(s.jobs)) {
      if (released.includes(jobId) && j.status === 'held') {
        s.jobs[jobId] = { ...j, status: 'active', nextAttemptAt: now.toISOString() };
      } else if (j.hold) {
        const { hold: _hold, ...rest } = j;
        s.jobs[jobId] = rest;
      }
    }
    return s;
  });
  ctx.log.info({ messageId: id, jobs: released }, 'message released by operator');
  return released;
}
