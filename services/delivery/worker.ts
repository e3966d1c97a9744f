/**
 * The job consumer: pulls DeliveryJobs from OUTBOUND (also those fired by JetStream message schedules — same
 * payload, same subject space), runs up to `concurrency` at once, publishes one DeliveryResult per attempt and
 * acks the job only after that publish's PubAck (rule 1: never ack without a report).
 */

import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { BodyStore } from '../common/body-store.ts';
import { jobWire, readJobMessage, resultWire } from '../common/body-wire.ts';
import { consumeSupervised, setAsideUnreadable } from '../common/consume.ts';
import { attemptEvent, publishEvent, receivedEvent } from '../common/events.ts';
import { attemptOccurrence, msgIds } from '../common/msg-ids.ts';
import { CONSUMERS, STREAMS, SUBJECTS } from '../common/nats.ts';
import type { LoopSupervisor } from '../common/supervise.ts';
import type { Logger } from '../common/telemetry.ts';
import { tlsSummary } from '../common/tls-summary.ts';
import type { BodyRef, DeliveryJob, DeliveryResult, RecipientOutcome } from '../common/types.ts';
import { type Attempt, type DeliverContext, deliverJob, outcomesForAll } from './deliver.ts';
import type { DeliveryMetrics } from './metrics.ts';
import type { SiteWait } from './shaping/gate.ts';

export interface WorkerOptions {
  js: JetStreamClient;
  pool: string;
  concurrency: number;
  ackWaitMs: number;
  ctx: DeliverContext;
  metrics: DeliveryMetrics;
  log: Logger;
  /** Restarts the consume loop when it fails; `ensure` re-creates a deleted pool consumer first. */
  loops: LoopSupervisor;
  ensure: () => Promise<void>;
}

export interface RunningWorker {
  /** Stops pulling and waits for jobs in flight (each still reports and acks). */
  stop(): Promise<void>;
}

const RESULT_LABEL = { delivered: 'delivered', deferred: 'deferred', failed: 'bounced' } as const;

/**
 * Re-schedules a job that waits for its site as a JetStream message schedule on its own `mail.sched.<pool>.<job>`
 * subject, targeting the subject it came from (the server publishes it there when due). The id is this copy's
 * stream sequence: a redelivered copy republishes the same schedule (deduplicated), a later wait gets a new one.
 */
async function scheduleWait(
  js: JetStreamClient,
  m: JsMsg,
  job: DeliveryJob,
  attached: Buffer | undefined,
  wait: SiteWait,
): Promise<void> {
  // A reserved token stays with the job until it is spent; the wait count drives the busy backoff.
  const token = wait.token ?? job.siteWait?.token;
  const waiting: DeliveryJob = {
    ...job,
    siteWait: { waits: (job.siteWait?.waits ?? 0) + 1, ...(token ? { token } : {}) },
  };
  // An attached body stays attached: the server republishes the message with its own headers.
  const { payload, headers } = jobWire(waiting, attached);
  await js.publish(SUBJECTS.scheduled(job.pool, job.jobId), payload, {
    msgID: msgIds.siteWait(job.jobId, job.attempt, m.seq),
    schedule: { specification: new Date(wait.untilMs), target: m.subject },
    ...(headers ? { headers } : {}),
  });
}

/**
 * Bodies up to this size stay attached to a direct job's result (the ingress default POSTERN_INLINE_BODY_MAX);
 * larger ones go to the body store first, so the queue's state entry, rewritten at every change, stays small.
 */
const RESULT_ATTACH_MAX = 16 * 1024;

/**
 * The body a direct job's result hands the queue: attached (with its bytes) when small, else a reference to the
 * body store (stored now if it came attached; idempotent per message id).
 */
async function resultBody(
  job: DeliveryJob,
  attached: Buffer | undefined,
  bodies: BodyStore,
): Promise<{ ref: BodyRef; bytes?: Buffer }> {
  const body = job.body;
  if (!('attached' in body)) return { ref: body };
  if (attached?.length !== body.attached) throw new Error(`job ${job.jobId}: attached body missing`);
  if (attached.length <= RESULT_ATTACH_MAX) return { ref: body, bytes: attached };
  return { ref: await bodies.put(job.messageId, attached, 5000) };
}

/** Every recipient of the job was delivered in this attempt. */
function allDelivered(job: DeliveryJob, outcomes: RecipientOutcome[]): boolean {
  const delivered = new Set(outcomes.filter((o) => o.status === 'delivered').map((o) => o.recipient));
  return job.recipients.every((r) => delivered.has(r));
}

/**
 * A direct job delivered to every recipient: its message's `received` and `delivered` events, issued in that
 * order on one connection (so stored in that order) and both acknowledged before the job is acked.
 */
async function settleDirect(
  js: JetStreamClient,
  job: DeliveryJob,
  outcomes: RecipientOutcome[],
  attemptedAt: string,
): Promise<void> {
  await Promise.all([
    publishEvent(js, receivedEvent(job, job.receivedAt), job.messageId),
    publishEvent(
      js,
      attemptEvent('delivered', job, outcomes, attemptedAt),
      attemptOccurrence(job.jobId, job.attempt),
    ),
  ]);
}

export async function runWorker(opts: WorkerOptions): Promise<RunningWorker> {
  const { js, pool, log, metrics } = opts;
  const open = async () => {
    await opts.ensure();
    const consumer = await js.consumers.get(STREAMS.outbound, CONSUMERS.delivery(pool));
    // A deleted consumer ends the loop (the supervisor re-creates it) instead of being waited for forever.
    return consumer.consume({ max_messages: opts.concurrency, abort_on_missing_resource: true });
  };
  // working() resets the server's ack timer (JetStream "+WPI"): a long SMTP transaction is not redelivered.
  const heartbeatMs = Math.max(1000, Math.min(10_000, Math.floor(opts.ackWaitMs / 3)));

  const handle = async (m: JsMsg) => {
    let job: DeliveryJob;
    let attached: Buffer | undefined;
    try {
      ({ job, attached } = readJobMessage(m));
    } catch (err) {
      // Nothing to report to without a job: a malformed one is terminated so it does not loop forever (a newer
      // release's job waits for an upgraded worker).
      setAsideUnreadable(m, err, log, { subject: m.subject });
      return;
    }
    const started = performance.now();
    const heartbeat = setInterval(() => {
      try {
        m.working();
      } catch {
        // NATS connection gone: nothing to extend; the job is redelivered after ack_wait.
      }
    }, heartbeatMs);
    const jlog = log.child({ messageId: job.messageId, jobId: job.jobId, attempt: job.attempt });
    try {
      let attempt: Attempt;
      try {
        attempt = await deliverJob(job, opts.ctx, attached);
      } catch (err) {
        jlog.error({ err: (err as Error).message }, 'unexpected delivery error; deferring');
        attempt = {
          outcomes: outcomesForAll(job.recipients, {
            code: 'ELOCAL',
            message: `local error: ${(err as Error).message}`,
          }),
        };
      }
      if ('wait' in attempt) {
        // A site at its limit: the job leaves the consumer's window until it may go (never an attempt, so its
        // retry budget is untouched) — unless it would expire first, then the queue decides on a report.
        if (attempt.wait.untilMs < Date.parse(job.expiresAt)) {
          await scheduleWait(js, m, job, attached, attempt.wait);
          await m.ackAck();
          metrics.siteWaits.inc({ pool });
          jlog.debug(
            { until: new Date(attempt.wait.untilMs).toISOString(), reason: attempt.wait.reason },
            'waiting for site',
          );
          return;
        }
        attempt = {
          outcomes: outcomesForAll(job.recipients, { code: 'ESITEWAIT', message: attempt.wait.reason }),
        };
      }
      const outcomes: RecipientOutcome[] = attempt.outcomes;
      const durationMs = Math.round(performance.now() - started);
      const attemptedAt = new Date().toISOString();
      if (job.direct && allDelivered(job, outcomes)) {
        // The lean path's common case: nothing for the queue to do, so its events are published here (the same
        // events under the same ids as the queue's, services/common/events.ts), then the job is acked, then its
        // stored body goes (after the ack: a redelivered job must still find it).
        await settleDirect(js, job, outcomes, attemptedAt);
        await m.ackAck();
        metrics.recipientsFinal.inc({ result: 'delivered' }, outcomes.length);
        const stored = job.body;
        if (!('inline' in stored) && !('attached' in stored))
          void opts.ctx.bodies
            .delete(stored)
            .catch((err: Error) => jlog.warn({ err: err.message }, 'could not delete the delivered body'));
      } else {
        // The body stays behind: the queue has its reference in the message state (a result is a small message),
        // except for a direct job, whose message the queue adopts from this result.
        // siteWait (a reserved token, wait count) belongs to this attempt only: the next one starts afresh.
        const { body: _body, siteWait: _siteWait, ...jobWithoutBody } = job;
        const body = job.direct ? await resultBody(job, attached, opts.ctx.bodies) : undefined;
        const result: DeliveryResult = {
          job: jobWithoutBody,
          outcomes,
          attemptedAt,
          durationMs,
          ...(body ? { body: body.ref } : {}),
        };
        // Nats-Msg-Id per attempt: a redelivered job that was already reported is deduplicated by the stream.
        const { payload, headers } = resultWire(result, body?.bytes);
        await js.publish(SUBJECTS.result(pool), payload, {
          msgID: msgIds.result(job.jobId, job.attempt),
          ...(headers ? { headers } : {}),
        });
        await m.ackAck();
      }
      metrics.duration.observe({ pool }, durationMs / 1000);
      for (const o of outcomes) metrics.attempts.inc({ pool, result: RESULT_LABEL[o.status] });
      jlog.info(
        {
          destination: job.route.kind === 'mx' ? job.route.domain : `${job.route.host}:${job.route.port}`,
          outcomes: outcomes.map((o) => ({
            rcpt: o.recipient,
            status: o.status,
            response: o.response,
            mta: o.remoteMta,
            ...(o.tls ? { tls: tlsSummary(o.tls) } : {}),
          })),
          durationMs,
        },
        'delivery attempt',
      );
    } catch (err) {
      jlog.error(
        { err: (err as Error).message },
        'could not report delivery result; job will be redelivered',
      );
      try {
        m.nak(1000);
      } catch {
        // Connection gone: the server redelivers after ack_wait anyway.
      }
    } finally {
      clearInterval(heartbeat);
    }
  };

  const running = consumeSupervised(opts.loops, `delivery-${pool}`, open, opts.concurrency, handle);
  await running.started;
  return running;
}
