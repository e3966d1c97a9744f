/**
 * Process entry point: `node services/ingress/main.ts`. Settings from the environment (settings.ts and
 * services/common/env.ts). Logs one `{"msg":"ready"}` line with the listener addresses; drains on SIGTERM/SIGINT.
 */
import { ConfigStore } from '../common/config/store.ts';
import { readEnv } from '../common/env.ts';
import { connectNats, ensureTopology } from '../common/nats.ts';
import { createLogger, createRegistry, startTelemetryServer } from '../common/telemetry.ts';
import { startIngress } from './service.ts';
import { readIngressSettings } from './settings.ts';

const env = readEnv();
const logger = createLogger('ingress', env.logLevel);

async function main(): Promise<void> {
  const settings = readIngressSettings();
  const nc = await connectNats(env.natsUrl, 'postern-ingress');
  await ensureTopology(nc, env.replicas);
  const config = new ConfigStore();
  config.on('error', (err: Error) => logger.warn({ err: err.message }, 'config document ignored'));
  await config.start(nc);
  const registry = createRegistry('ingress');
  const telemetry = await startTelemetryServer({
    registry,
    host: env.metricsHost,
    port: env.metricsPort,
    ready: () => !nc.isClosed(),
  });
  const ingress = await startIngress({ nc, config, logger, registry, settings });
  logger.info(
    {
      listeners: ingress.listeners.map((l) => ({
        name: l.name,
        mode: l.mode,
        address: `${l.host}:${l.port}`,
      })),
      metrics: `${env.metricsHost}:${telemetry.port}`,
    },
    'ready',
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    await ingress.close();
    config.stop();
    await nc.drain();
    await telemetry.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: Error) => {
  logger.fatal({ err: err.message }, 'ingress failed to start');
  process.exit(1);
});
