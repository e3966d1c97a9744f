/** Queue metrics (names fixed by the dashboards; see docs/queue.md). */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface QueueMetrics {
  depth: Gauge<'stream' | 'consumer'>;
  oldestAge: Gauge<'stream'>;
  bounces: Counter<'type'>;
  dsnSent: Counter;
  deferred: Counter<'pool'>;
  recipientsFinal: Counter<'result'>;
}

export function createQueueMetrics(registry: Registry): QueueMetrics {
  const registers = [registry];
  return {
    depth: new Gauge({
      name: 'postern_queue_depth',
      help: 'Messages pending or awaiting ack on a consumer (num_pending + num_ack_pending).',
      labelNames: ['stream', 'consumer'],
      registers,
    }),
    oldestAge: new Gauge({
      name: 'postern_queue_oldest_age_seconds',
      help: 'Age of the oldest message stored in the stream.',
      labelNames: ['stream'],
      registers,
    }),
    bounces: new Counter({
      name: 'postern_bounces_total',
      help: 'Recipients bounced: hard = permanent (5xx) failure, soft = expired after deferrals.',
      labelNames: ['type'],
      registers,
    }),
    dsnSent: new Counter({
      name: 'postern_dsn_sent_total',
      help: 'Delivery status notifications sent.',
      registers,
    }),
    deferred: new Counter({
      name: 'postern_messages_deferred_total',
      help: 'Jobs deferred and scheduled for a later attempt.',
      labelNames: ['pool'],
      registers,
    }),
    recipientsFinal: new Counter({
      name: 'postern_recipients_final_total',
      help: 'Recipients that reached a final state.',
      labelNames: ['result'],
      registers,
    }),
  };
}
