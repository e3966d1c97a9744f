/**
 * HTTP API metrics. Accepted messages also count in the ingress's own series with `listener="api"`, so the
 * dashboard's received-messages and accept-latency panels include API traffic without new queries.
 */
import { Counter, Histogram, type Registry } from 'prom-client';

export interface ApiMetrics {
  /** Every answered request, by HTTP status and error code (`accepted` for 202). */
  requests: Counter<'status' | 'code'>;
  /** Messages by result (accepted = 202 after PubAck, tempfail = 503, rejected = refused). */
  messagesReceived: Counter<'listener' | 'result'>;
  /** Request fully read → 202 (compose, body store, PubAck). */
  acceptDuration: Histogram<'listener'>;
  rateLimitFallbacks: Counter;
}

export function createApiMetrics(registry: Registry): ApiMetrics {
  return {
    requests: new Counter({
      name: 'postern_api_requests_total',
      help: 'HTTP API requests by status and error code',
      labelNames: ['status', 'code'],
      registers: [registry],
    }),
    messagesReceived: new Counter({
      name: 'postern_messages_received_total',
      help: 'Messages at end of DATA (or an API request) by result (accepted = 250/202 after PubAck)',
      labelNames: ['listener', 'result'],
      registers: [registry],
    }),
    acceptDuration: new Histogram({
      name: 'postern_accept_duration_seconds',
      help: 'Time from end of DATA (or the whole API request read) to the 250/202 reply (body store + PubAck)',
      labelNames: ['listener'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    rateLimitFallbacks: new Counter({
      name: 'postern_client_rate_fallbacks_total',
      help: 'messagesPerMinute decisions made per replica because the cluster-wide counters did not answer',
      registers: [registry],
    }),
  };
}
