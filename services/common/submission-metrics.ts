/**
 * The series every way into Postern shares (SMTP ingress and the HTTP API), so the dashboard's received-messages
 * and accept-latency panels count both without new queries; `listener` names the way in (`api` for HTTP).
 */
import { Counter, Histogram, type Registry } from 'prom-client';

export interface SubmissionMetrics {
  /** Messages by result (accepted = 250/202 after the PubAck, tempfail = 451/503, rejected = refused). */
  messagesReceived: Counter<'listener' | 'result'>;
  /** End of DATA (or the whole API request read) → 250/202 (body store + PubAck). */
  acceptDuration: Histogram<'listener'>;
  /** messagesPerMinute decisions taken by this replica's own window because the shared counters did not answer. */
  rateLimitFallbacks: Counter;
}

export function createSubmissionMetrics(registry: Registry): SubmissionMetrics {
  return {
    messagesReceived: new Counter({
      name: 'postern_messages_received_total',
      help: 'Messages at end of DATA or in an API request, by result (accepted = 250/202 after the PubAck)',
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
