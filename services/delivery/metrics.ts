/** Delivery metrics (names fixed by the dashboards; see docs/delivery.md). */

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { recipientsFinalCounter } from '../common/recipient-metrics.ts';

export interface DeliveryMetrics {
  attempts: Counter<'pool' | 'result'>;
  duration: Histogram<'pool'>;
  connectionsActive: Gauge<'pool'>;
  siteWaits: Counter<'pool'>;
  /** Recipients of direct jobs this process settled (all delivered on the first attempt). */
  recipientsFinal: Counter<'result'>;
}

/** Sites named in postern_site_state; the rest are summed under `other` (bounded label cardinality). */
export const SITE_METRIC_TOP_N = 20;

/**
 * postern_site_state{site,state}: the number of sites in each state (normal, throttled, suspended), computed at
 * scrape time from the cluster-wide site state; the `SITE_METRIC_TOP_N` sites this process sent most to are named,
 * the rest are counted under site="other".
 */
export function registerSiteStateGauge(
  registry: Registry,
  volumes: () => { site: string; messages: number; state: string }[],
): void {
  new Gauge({
    name: 'postern_site_state',
    help: 'Sites by state (normal|throttled|suspended); top sites by volume named, the rest under site="other".',
    labelNames: ['site', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      const all = volumes().sort((a, b) => b.messages - a.messages);
      for (const v of all.slice(0, SITE_METRIC_TOP_N)) this.set({ site: v.site, state: v.state }, 1);
      for (const v of all.slice(SITE_METRIC_TOP_N)) this.inc({ site: 'other', state: v.state });
    },
  });
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
    siteWaits: new Counter({
      name: 'postern_delivery_site_waits_total',
      help: 'Jobs sent back to wait (re-scheduled) because their site was suspended or at its limits.',
      labelNames: ['pool'],
      registers: [registry],
    }),
    recipientsFinal: recipientsFinalCounter([registry]),
  };
}
