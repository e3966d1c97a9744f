/**
 * Everything the queue publishes. Each publish awaits its PubAck and carries a Nats-Msg-Id derived from the
 * message, job and attempt, so a handler that runs again after a crash republishes the same ids and
 * JetStream's duplicate window drops the copies (DESIGN §3 rules).
 */

import type { JetStreamClient } from '@nats-io/jetstream';
import { jobWire } from '../common/body-wire.ts';
import { msgIds } from '../common/msg-ids.ts';
import { SUBJECTS } from '../common/nats.ts';
import { destinationKey } from '../common/router.ts';
import type { DeliveryJob } from '../common/types.ts';

/** Publishes a job for immediate delivery on OUTBOUND; `body`: the bytes of an attached body (body-wire.ts). */
export async function publishJob(js: JetStreamClient, job: DeliveryJob, body?: Buffer): Promise<void> {
  const { payload, headers } = jobWire(job, body);
  await js.publish(SUBJECTS.outbound(job.pool, destinationKey(job.route)), payload, {
    msgID: msgIds.job(job.jobId, job.attempt),
    ...(headers ? { headers } : {}),
  });
}

/**
 * Publishes a deferred job as a JetStream message schedule (server ≥ 2.12, `Nats-Schedule: @at …`): it waits on
 * its own `mail.sched.<pool>.<job>` subject — outside the delivery consumers' filter, so it holds no ack-pending
 * slot — and the server republishes it onto the OUTBOUND target when due. A later publish on the same subject
 * replaces the schedule; a due date in the past fires at once. The server keeps the message's own headers when
 * it republishes, so an attached body (`body`) arrives attached.
 */
export async function scheduleJob(
  js: JetStreamClient,
  job: DeliveryJob,
  due: Date,
  msgID = msgIds.job(job.jobId, job.attempt),
  body?: Buffer,
): Promise<void> {
  const { payload, headers } = jobWire(job, body);
  await js.publish(SUBJECTS.scheduled(job.pool, job.jobId), payload, {
    msgID,
    schedule: { specification: due, target: SUBJECTS.outbound(job.pool, destinationKey(job.route)) },
    ...(headers ? { headers } : {}),
  });
}
