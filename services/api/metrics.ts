/**
 * HTTP API metrics. Accepted messages also count in the ingress's own series with `listener="api"`, so the
 * dashboard's received-messages and accept-latency panels include API traffic without new queries.
 */
import { Counter, type Registry } from 'prom-client';
import { createSubmissionMetrics, type SubmissionMetrics } from '../common/submission-metrics.ts';

export interface ApiMetrics extends SubmissionMetrics {
  /** Every answered request, by HTTP status and error code (`accepted` for 202). */
  requests: Counter<'status' | 'code'>;
}

export function createApiMetrics(registry: Registry): ApiMetrics {
  return {
    ...createSubmissionMetrics(registry),
    requests: new Counter({
      name: 'postern_api_requests_total',
      help: 'HTTP API requests by status and error code',
      labelNames: ['status', 'code'],
      registers: [registry],
    }),
  };
}
