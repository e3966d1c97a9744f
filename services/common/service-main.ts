/**
 * The process life cycle every Postern process shares (ingress, queue, delivery, operator): settings from the
 * environment, telemetry server first (so liveness answers while we wait), NATS connection + topology + live
 * config retried with backoff until NATS is there (/readyz answers 503 meanwhile), one `{"msg":"ready"}` log line
 * (local mode and tests wait for it), and a graceful drain on SIGTERM/SIGINT (a second signal is ignored while
 * draining, so in-flight work finishes).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import { ConfigStore } from './config/store.ts';
import { readEnv, type ServiceEnv } from './env.ts';
import { connectNats, ensureTopology } from './nats.ts';
import { retryUntilDone } from './retry.ts';
import { LoopSupervisor } from './supervise.ts';
import { createLogger, createRegistry, flushLogs, type Logger, startTelemetryServer } from './telemetry.ts';

export interface ServiceContext {
  env: ServiceEnv;
  logger: Logger;
  registry: Registry;
  nc: NatsConnection;
  /** Present when the service asked for the live configuration. */
  config?: ConfigStore;
  /** Supervises the service's long-lived loops; a broken loop makes /readyz answer 503. */
  loops: LoopSupervisor;
}

export interface RunningService {
  close(): Promise<void>;
  /** Extra readiness condition for /readyz (NATS connected is always required). */
  ready?: () => boolean;
  /** Fields of the ready log line (addresses, pool…). */
  info: Record<string, unknown>;
}

/**
 * Runs one service process; never returns. Exits 0 after a graceful stop (also when stopped while still
 * waiting for NATS) and 1 only when the service's own start fails for a reason other than NATS.
 */
export function runServiceMain(
  name: string,
  opts: { watchConfig: boolean; natsName?: string },
  start: (ctx: ServiceContext) => Promise<RunningService>,
): void {
  const env = readEnv();
  const logger = createLogger(name, env.logLevel);
  const registry = createRegistry(name);
  const starting = new AbortController();
  let nc: NatsConnection | undefined;
  let config: ConfigStore | undefined;
  let service: RunningService | undefined;
  let telemetry: Awaited<ReturnType<typeof startTelemetryServer>> | undefined;

  let stopping = false;
  const loops = new LoopSupervisor({ logger, registry, closing: () => stopping || !!nc?.isClosed() });
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, started: service !== undefined }, 'stopping');
    starting.abort(new Error(`${signal} while starting`));
    try {
      await service?.close();
      await config?.stop();
      if (nc && !nc.isClosed()) await nc.drain();
      await telemetry?.close();
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'error while stopping');
      process.exit(1);
    }
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  const main = async () => {
    telemetry = await startTelemetryServer({
      registry,
      host: env.metricsHost,
      port: env.metricsPort,
      // Liveness (/healthz) is the process; readiness waits for NATS, topology, config and the service, and
      // turns 503 while one of its supervised loops is broken.
      ready: () =>
        !!nc && !nc.isClosed() && service !== undefined && loops.healthy() && (service.ready?.() ?? true),
    });
    const retry = { logger, signal: starting.signal };
    const conn = await retryUntilDone(
      'connect to NATS',
      () => connectNats(env.natsUrl, opts.natsName ?? `postern-${name}`),
      retry,
    );
    nc = conn;
    await retryUntilDone('JetStream streams and buckets', () => ensureTopology(conn, env.replicas), retry);
    if (opts.watchConfig) {
      const store = new ConfigStore();
      store.on('error', (err: Error) => logger.warn({ err: err.message }, 'config document ignored'));
      // The watch retries by itself under the loop supervisor (logged as config-watch); stop() ends the wait.
      config = store;
      await store.start(conn, loops);
    }
    starting.signal.throwIfAborted();
    const running = await start({ env, logger, registry, nc: conn, loops, ...(config ? { config } : {}) });
    if (stopping) {
      // SIGTERM arrived during start: stop() ran before the service existed, so close it here.
      await running.close();
      return;
    }
    service = running;
    // The ready line is always written (local mode and tests wait for it), whatever LOG_LEVEL says.
    const announce = logger.isLevelEnabled('info') ? logger : createLogger(name, 'info');
    announce.info({ ...service.info, metrics: `${env.metricsHost}:${telemetry.port}` }, 'ready');
    flushLogs();
  };
  main().catch((err: Error) => {
    if (stopping) return;
    logger.fatal({ err: err.message }, `${name} failed to start`);
    process.exit(1);
  });
}
