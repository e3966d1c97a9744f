/** Queue metrics (names fixed by the dashboards; see docs/queue.md). */

import { Counter, Gauge, type Registry } from 'prom-client';
import { recipientsFinalCounter } from '../common/recipient-metrics.ts';
import { TopSites } from './site-labels.ts';

export interface QueueMetrics {
  depth: Gauge<'stream' | 'consumer'>;
  oldestAge: Gauge<'stream'>;
  bounces: Counter<'type'>;
  dsnSent: Counter;
  deferred: Counter<'pool'>;
  recipientsFinal: Counter<'result'>;
  /** Deferred jobs by site (the job's destination), the busiest `topSites` by name and the rest as `other`. */
  siteDeferrals: Counter<'site'>;
  /** The bounded label for a site's deferral (counts it). */
  siteLabel(site: string): string;
}

export function createQueueMetrics(registry: Registry, topSites = 10): QueueMetrics {
  const registers = [registry];
  const siteDeferrals = new Counter({
    name: 'postern_site_deferrals_total',
    help: 'Jobs deferred by site (smarthost/mailbox host:port or recipient domain); the busiest sites by name, the rest as "other".',
    labelNames: ['site'],
    registers,
  });
  const sites = new TopSites({ top: topSites, onDropped: (site) => siteDeferrals.remove({ site }) });
  return {
    siteDeferrals,
    siteLabel: (site) => sites.label(site),
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
    recipientsFinal: recipientsFinalCounter(registers),
  };
}
