/** Ingress metrics; names and labels are fixed by the dashboards (docs/brief "Metric names"). */
import { Counter, Gauge, type Registry } from 'prom-client';
import { createSubmissionMetrics, type SubmissionMetrics } from '../common/submission-metrics.ts';

export interface IngressMetrics extends SubmissionMetrics {
  sessionsActive: Gauge<'listener'>;
  rejections: Counter<'listener' | 'reason'>;
  /** AUTH lockout decisions taken by this replica's own counts because the shared counters did not answer. */
  authLockoutFallbacks: Counter;
  /** PROXY protocol headers accepted on listeners behind a load balancer, by version and command. */
  proxyHeaders: Counter<'listener' | 'version' | 'command'>;
  /** Connections closed before SMTP on PROXY protocol listeners (untrusted peer, bad header, timeout). */
  proxyRefusals: Counter<'listener' | 'reason'>;
  /** Sender authentication of inbound mail: the verdict and the DMARC result it rested on. */
  senderAuth: Counter<'action' | 'dmarc'>;
}

export function createIngressMetrics(registry: Registry): IngressMetrics {
  return {
    ...createSubmissionMetrics(registry),
    sessionsActive: new Gauge({
      name: 'postern_smtp_sessions_active',
      help: 'Open SMTP sessions',
      labelNames: ['listener'],
      registers: [registry],
    }),
    rejections: new Counter({
      name: 'postern_smtp_rejections_total',
      help: 'SMTP commands refused by policy, by reason',
      labelNames: ['listener', 'reason'],
      registers: [registry],
    }),
    authLockoutFallbacks: new Counter({
      name: 'postern_auth_lockout_fallbacks_total',
      help: 'AUTH failure counter operations answered per replica because the cluster-wide counters did not answer',
      registers: [registry],
    }),
    proxyHeaders: new Counter({
      name: 'postern_proxy_headers_total',
      help: 'PROXY protocol headers accepted (command proxy = a relayed client, local = the balancer itself)',
      labelNames: ['listener', 'version', 'command'],
      registers: [registry],
    }),
    proxyRefusals: new Counter({
      name: 'postern_proxy_refusals_total',
      help: 'Connections closed without a banner on PROXY protocol listeners, by reason',
      labelNames: ['listener', 'reason'],
      registers: [registry],
    }),
    senderAuth: new Counter({
      name: 'postern_sender_auth_total',
      help: 'Inbound messages sender-authenticated at end of DATA, by verdict (accept|hold|reject|unverified) and DMARC result',
      labelNames: ['action', 'dmarc'],
      registers: [registry],
    }),
  };
}
