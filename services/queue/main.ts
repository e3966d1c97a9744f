/**
 * Process entry point: `node services/queue/main.ts`. Settings from the environment (settings.ts and
 * services/common/env.ts). Logs one `{"msg":"ready"}` line with its addresses; drains on SIGTERM/SIGINT.
 */
import { ConfigStore } from '../common/config/store.ts';
import { readEnv } from '../common/env.ts';
import { connectNats, ensureTopology } from '../common/nats.ts';
import { createLogger, createRegistry, startTelemetryServer } from '../common/telemetry.ts';
import { startQueue } from './service.ts';
import { readQueueSettings } from './settings.ts';

const env = readEnv();
const logger = createLogger('queue', env.logLevel);

async function main(): Promise<void> {
  const settings = readQueueSettings();
  const nc = await connectNats(env.natsUrl, 'postern-queue');
  await ensureTopology(nc, env.replicas);
  const config = new ConfigStore();
  config.on('error', (err: Error) => logger.warn({ err: err.message }, 'config document ignored'));
  await config.start(nc);
  const registry = createRegistry('queue');
  const telemetry = await startTelemetryServer({
    registry,
    host: env.metricsHost,
    port: env.metricsPort,
    ready: () => !nc.isClosed(),
  });
  const queue = await startQueue({ nc, config, logger, registry, settings });
  logger.info(
    { admin: `${settings.adminHost}:${queue.adminPort}`, metrics: `${env.metricsHost}:${telemetry.port}` },
    'ready',
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    await queue.close();
    config.stop();
    await nc.drain();
    await telemetry.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: Error) => {
  logger.fatal({ err: err.message }, 'queue failed to start');
  process.exit(1);
});
