/**
 * The dead letter of a webhook event that was not accepted within the endpoint's maxLifetime: published on
 * `webhook.dead.<endpoint>` (stream WEBHOOK_DEAD, 30 days) with the event and the last failure, so an operator
 * or a job can inspect and replay it. Deduplicated by endpoint + event id: a redelivered event whose dead-letter
 * publish succeeded but whose ack was lost is not dead-lettered twice.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import { msgIds } from '../common/msg-ids.ts';
import { SUBJECTS } from '../common/nats.ts';

export interface DeadLetter {
  /** `<namespace>/<name>` of the Webhook. */
  endpoint: string;
  url: string;
  eventId: string;
  type: string;
  attempts: number;
  /** When the event was stored in EVENTS, and when it was given up. */
  storedAt: string;
  deadAt: string;
  lastError: string;
  /** The event as it was (the `data` of the request body). */
  event: unknown;
}

export async function publishDeadLetter(js: JetStreamClient, d: DeadLetter): Promise<void> {
  const token = d.endpoint.replace('/', '.');
  await js.publish(SUBJECTS.webhookDead(token), JSON.stringify(d), {
    msgID: msgIds.webhookDead(token, d.eventId),
  });
}
