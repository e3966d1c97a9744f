/** Delivery metrics (names fixed by the dashboards; see docs/delivery.md). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface DeliveryMetrics {
  attempts: Counter<'pool' | 'result'>;
  duration: Histogram<'pool'>;
  connectionsActive: Gauge<'pool'>;
}

export function createDeliveryMetrics(registry: Registry): DeliveryMetrics {
  return {
    attempts: new Counter({
      name: 'postern_delivery_attempts_total',
      help: 'Per-recipient delivery attempts by outcome (delivered|deferred|bounced).',
      labelNames: ['pool', 'result'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'postern_delivery_duration_seconds',
      help: 'Time to run one delivery job (connect, transaction, report).',
      labelNames: ['pool'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [registry],
    }),
    connectionsActive: new Gauge({
      name: 'postern_delivery_connections_active',
      help: 'Open outbound SMTP/LMTP connections (busy and idle pooled).',
      labelNames: ['pool'],
      registers: [registry],
    }),
  };
}
