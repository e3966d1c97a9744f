/** What the queue's handlers share: clients for JetStream, KV and object store, config, metrics, settings. */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { BodyStore } from '../common/body-store.ts';
import type { ConfigStore } from '../common/config/store.ts';
import type { SuppressionList } from '../common/suppression.ts';
import type { Logger } from '../common/telemetry.ts';
import type { QueueMetrics } from './metrics.ts';

export interface QueueContext {
  js: JetStreamClient;
  jsm: JetStreamManager;
  state: KV;
  bodies: BodyStore;
  suppression: SuppressionList;
  config: ConfigStore;
  metrics: QueueMetrics;
  log: Logger;
  /** Reporting-MTA / MAILER-DAEMON host name for DSNs. */
  hostname: string;
  /**
   * TTL of the purge marker a finished message's state leaves (a Go duration, e.g. "300s"), when KV `messages`
   * allows per-message TTLs; undefined: a plain delete marker (a bucket the topology owner has not upgraded yet).
   */
  stateMarkerTtl?: string | undefined;
}
