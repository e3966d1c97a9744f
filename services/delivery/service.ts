/**
 * Delivery service: `startDelivery` wires the job consumer, the connection pool, DNS and metrics together.
 * See docs/delivery.md.
 */
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import { BodyStore } from '../common/body-store.ts';
import type { ConfigStore } from '../common/config/store.ts';
import { createRecordResolver } from '../common/dns-resolver.ts';
import { readEnv } from '../common/env.ts';
import { type SecretBox, secretBoxFromEnv } from '../common/secrets.ts';
import { LoopSupervisor } from '../common/supervise.ts';
import type { Logger } from '../common/telemetry.ts';
import { ConnectionPool } from './connection-pool.ts';
import { ensureDeliveryConsumer } from './consumer.ts';
import { installFastDotStuffing } from './dot-stuffing.ts';
import { createDeliveryMetrics, registerSiteStateGauge } from './metrics.ts';
import type { DeliverySettings } from './settings.ts';
import { startShaping } from './shaping/gate.ts';
import { startTlsSupport } from './tls-setup.ts';
import { runWorker } from './worker.ts';

export interface DeliveryOptions {
  nc: NatsConnection;
  logger: Logger;
  registry: Registry;
  settings: DeliverySettings;
  /** The live configuration (RelayPolicy `destinations[]` limits); without it only provider rules apply. */
  config?: ConfigStore | undefined;
  /** The process's loop supervisor (services/common/service-main.ts); a private one otherwise (tests). */
  loops?: LoopSupervisor;
  /** Opens sealed smarthost passwords and DKIM keys; default: the key file of $POSTERN_SECRETS_KEY_FILE. */
  secrets?: SecretBox | undefined;
}

export interface DeliveryService {
  pool: string;
  /** Stops pulling jobs, finishes (reports + acks) those in flight, closes pooled connections. */
  close(): Promise<void>;
}

export async function startDelivery(opts: DeliveryOptions): Promise<DeliveryService> {
  const { nc, settings } = opts;
  installFastDotStuffing();
  const log = opts.logger.child({ pool: settings.pool });
  const metrics = createDeliveryMetrics(opts.registry);
  const loops =
    opts.loops ?? new LoopSupervisor({ logger: log, registry: opts.registry, closing: () => nc.isClosed() });
  await ensureDeliveryConsumer(nc, settings);
  const bodies = new BodyStore(nc);
  const gauge = metrics.connectionsActive.labels({ pool: settings.pool });
  const pool = new ConnectionPool({
    idleMs: settings.idleTimeoutMs,
    maxMessages: settings.maxMessagesPerConnection,
    maxPerDestination: settings.maxConnectionsPerDestination,
    onCount: (d) => gauge.inc(d),
  });
  const resolveRecords = createRecordResolver(settings.dnsServers);
  const tls = await startTlsSupport(nc, settings, resolveRecords, log, readEnv().replicas);
  const shaping = settings.shaping.enabled
    ? await startShaping({
        nc,
        js: jetstream(nc),
        config: opts.config,
        resolveRecords,
        mxPort: settings.mxPort,
        replicas: readEnv().replicas,
        settings: settings.shaping,
        log,
        loops,
      })
    : undefined;
  if (shaping) registerSiteStateGauge(opts.registry, () => shaping.volumes());
  const worker = await runWorker({
    js: jetstream(nc),
    pool: settings.pool,
    concurrency: settings.concurrency,
    ackWaitMs: settings.ackWaitMs,
    metrics,
    log,
    loops,
    ensure: () => ensureDeliveryConsumer(nc, settings),
    ctx: {
      bodies,
      pool,
      log,
      name: settings.hostname,
      timeoutMs: settings.smtpTimeoutMs,
      mxPort: settings.mxPort,
      allowLoopbackMx: settings.allowLoopbackMx,
      resolveRecords,
      shaping,
      secrets: opts.secrets ?? secretBoxFromEnv(),
      ...tls.ctx,
    },
  });
  log.info(
    { concurrency: settings.concurrency, dns: settings.dnsServers, mxPort: settings.mxPort },
    'delivery started',
  );
  return {
    pool: settings.pool,
    async close() {
      tls.close();
      await worker.stop();
      pool.close();
      shaping?.close();
    },
  };
}
