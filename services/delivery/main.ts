/**
 * Process entry point: `node services/delivery/main.ts`. Settings from the environment (settings.ts and
 * services/common/env.ts). Logs one `{"msg":"ready"}` line; on SIGTERM/SIGINT finishes jobs in flight and exits 0.
 */
import { readEnv } from '../common/env.ts';
import { connectNats, ensureTopology } from '../common/nats.ts';
import { createLogger, createRegistry, startTelemetryServer } from '../common/telemetry.ts';
import { startDelivery } from './service.ts';
import { readDeliverySettings } from './settings.ts';

const env = readEnv();
const logger = createLogger('delivery', env.logLevel);

async function main(): Promise<void> {
  const settings = readDeliverySettings();
  const nc = await connectNats(env.natsUrl, `postern-delivery-${settings.pool}`);
  await ensureTopology(nc, env.replicas);
  const registry = createRegistry('delivery');
  const telemetry = await startTelemetryServer({
    registry,
    host: env.metricsHost,
    port: env.metricsPort,
    ready: () => !nc.isClosed(),
  });
  const delivery = await startDelivery({ nc, logger, registry, settings });
  logger.info({ pool: settings.pool, metrics: `${env.metricsHost}:${telemetry.port}` }, 'ready');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    await delivery.close();
    await nc.drain();
    await telemetry.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: Error) => {
  logger.fatal({ err: err.message }, 'delivery failed to start');
  process.exit(1);
});
