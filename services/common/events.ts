/**
 * The mail events (EVENTS, `mail.event.<kind>`) of a message's reception and of its delivery attempts, built in
 * one place: the queue publishes them for the messages it holds state for (services/queue/lifecycle.ts), delivery
 * for a direct job it settles itself (services/delivery/worker.ts), and both must say the same thing under the same
 * Nats-Msg-Id, so a message reported twice (a redelivered job or result) is stored once.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import { encodeContract } from './contracts.ts';
import { msgIds } from './msg-ids.ts';
import { SUBJECTS } from './nats.ts';
import type { DeliveryJob, MailEvent, RecipientOutcome } from './types.ts';

/** What an attempt's event tells about its job. */
type JobFacts = Pick<DeliveryJob, 'messageId' | 'from' | 'attempt' | 'pool' | 'policy'>;

/** `received`: the message was accepted and routed (occurrence: the message id). */
export function receivedEvent(
  m: { messageId: string; from: string; recipients: string[]; policy?: string | undefined },
  at: string,
): MailEvent {
  return {
    kind: 'received',
    messageId: m.messageId,
    at,
    from: m.from,
    recipients: m.recipients,
    ...(m.policy ? { policy: m.policy } : {}),
  };
}

/** One attempt's event for the recipients that share an outcome (occurrence: job id + attempt). */
export function attemptEvent(
  kind: 'delivered' | 'bounced' | 'expired' | 'deferred',
  job: JobFacts,
  outcomes: RecipientOutcome[],
  at: string,
): MailEvent {
  const first = outcomes[0]!;
  return {
    kind,
    messageId: job.messageId,
    at,
    from: job.from,
    recipients: outcomes.map((o) => o.recipient),
    response: first.response,
    attempt: job.attempt,
    pool: job.pool,
    ...(job.policy ? { policy: job.policy } : {}),
    ...(first.tls ? { tls: first.tls } : {}),
  };
}

/** Publishes an event on EVENTS; `occurrence` identifies it (message, or job + attempt) for deduplication. */
export async function publishEvent(js: JetStreamClient, event: MailEvent, occurrence: string): Promise<void> {
  await js.publish(SUBJECTS.event(event.kind), encodeContract(event), {
    msgID: msgIds.event(event.kind, occurrence),
  });
}
