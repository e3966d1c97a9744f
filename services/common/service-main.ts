/**
 * The process life cycle every Postern process shares (ingress, queue, delivery, operator): settings from the
 * environment, NATS connection + topology, optional live config, telemetry server, one `{"msg":"ready"}` log line
 * (local mode and tests wait for it), and a graceful drain on SIGTERM/SIGINT (a second signal is ignored while
 * draining, so in-flight work finishes).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import { ConfigStore } from './config/store.ts';
import { readEnv, type ServiceEnv } from './env.ts';
import { connectNats, ensureTopology } from './nats.ts';
import { createLogger, createRegistry, type Logger, startTelemetryServer } from './telemetry.ts';

export interface ServiceContext {
  env: ServiceEnv;
  logger: Logger;
  registry: Registry;
  nc: NatsConnection;
  /** Present when the service asked for the live configuration. */
  config?: ConfigStore;
}

export interface RunningService {
  close(): Promise<void>;
  /** Extra readiness condition for /readyz (NATS connected is always required). */
  ready?: () => boolean;
  /** Fields of the ready log line (addresses, pool…). */
  info: Record<string, unknown>;
}

/** Runs one service process; never returns (exits 0 after a graceful stop, 1 when start-up fails). */
export function runServiceMain(
  name: string,
  opts: { watchConfig: boolean; natsName?: string },
  start: (ctx: ServiceContext) => Promise<RunningService>,
): void {
  const env = readEnv();
  const logger = createLogger(name, env.logLevel);
  const main = async () => {
    const nc = await connectNats(env.natsUrl, opts.natsName ?? `postern-${name}`);
    await ensureTopology(nc, env.replicas);
    let config: ConfigStore | undefined;
    if (opts.watchConfig) {
      config = new ConfigStore();
      config.on('error', (err: Error) => logger.warn({ err: err.message }, 'config document ignored'));
      await config.start(nc);
    }
    const registry = createRegistry(name);
    let service: RunningService | undefined;
    const telemetry = await startTelemetryServer({
      registry,
      host: env.metricsHost,
      port: env.metricsPort,
      ready: () => !nc.isClosed() && service !== undefined && (service.ready?.() ?? true),
    });
    service = await start({ env, logger, registry, nc, ...(config ? { config } : {}) });
    // The ready line is always written (local mode and tests wait for it), whatever LOG_LEVEL says.
    const announce = logger.isLevelEnabled('info') ? logger : createLogger(name, 'info');
    announce.info({ ...service.info, metrics: `${env.metricsHost}:${telemetry.port}` }, 'ready');

    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping');
      await service?.close();
      config?.stop();
      await nc.drain();
      await telemetry.close();
      process.exit(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
  };
  main().catch((err: Error) => {
    logger.fatal({ err: err.message }, `${name} failed to start`);
    process.exit(1);
  });
}
