/**
 * The delivery pool's JetStream consumer (`delivery-<pool>` on OUTBOUND, filter `mail.out.<pool>.>`), in one
 * place: delivery workers create or update it at start, and the operator creates it (never updates it) for a
 * pool that has no worker yet, so the autoscaler can read a lag and scale a `minReplicas: 0` pool up from zero.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { CONSUMERS, type ConsumerSpec, ensureConsumer, STREAMS, SUBJECTS } from '../common/nats.ts';
import type { DeliverySettings } from './settings.ts';

export type DeliveryConsumerSettings = Pick<DeliverySettings, 'pool' | 'ackWaitMs' | 'concurrency'>;

export function deliveryConsumerSpec(s: DeliveryConsumerSettings): ConsumerSpec {
  return {
    stream: STREAMS.outbound,
    durable: CONSUMERS.delivery(s.pool),
    filter: SUBJECTS.outboundPool(s.pool),
    ackWaitMs: s.ackWaitMs,
    // Jobs pulled but not yet started wait client-side; keep a few batches in flight per worker.
    maxAckPending: 4 * s.concurrency,
  };
}

/** Creates the pool's consumer, or (unless `createOnly`) updates it to these settings. */
export async function ensureDeliveryConsumer(
  nc: NatsConnection,
  s: DeliveryConsumerSettings,
  opts: { createOnly?: boolean } = {},
): Promise<void> {
  const spec = deliveryConsumerSpec(s);
  await ensureConsumer(nc, spec.stream, spec.durable, spec.filter, { ...spec, ...opts });
}
