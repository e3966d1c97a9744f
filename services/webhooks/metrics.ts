/** The dispatcher's Prometheus metrics, per endpoint (`<namespace>/<name>` of the Webhook; bounded by config). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface WebhookMetrics {
  /** result: delivered | failed (non-2xx) | timeout | error (connection) | dead_letter. */
  deliveries: Counter<'endpoint' | 'result'>;
  duration: Histogram<'endpoint'>;
  /** Events not yet acknowledged by the endpoint: the consumer's num_pending + num_ack_pending. */
  pending: Gauge<'endpoint'>;
}

export function createWebhookMetrics(registry: Registry): WebhookMetrics {
  const registers = [registry];
  return {
    deliveries: new Counter({
      name: 'postern_webhook_deliveries_total',
      help: 'Webhook attempts by endpoint and result (delivered, failed, timeout, error, dead_letter)',
      labelNames: ['endpoint', 'result'],
      registers,
    }),
    duration: new Histogram({
      name: 'postern_webhook_duration_seconds',
      help: 'Time from request to response (or timeout) of one webhook attempt',
      labelNames: ['endpoint'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    pending: new Gauge({
      name: 'postern_webhook_pending',
      help: 'Events waiting for an endpoint (not yet delivered, or delivered and awaiting a retry)',
      labelNames: ['endpoint'],
      registers,
    }),
  };
}
