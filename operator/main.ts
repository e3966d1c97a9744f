/**
 * Process entry point: `node operator/main.ts`. Kubernetes credentials from KUBECONFIG (out of cluster) or
 * the in-cluster service account; everything else from the environment (settings.ts). Logs one
 * `{"msg":"ready"}` line; on SIGTERM/SIGINT stops reconciling, releases the Lease and exits 0.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { readEnv } from '../services/common/env.ts';
import { connectNats, ensureTopology } from '../services/common/nats.ts';
import { createLogger, createRegistry, startTelemetryServer } from '../services/common/telemetry.ts';
import { startOperator } from './operator.ts';
import { readOperatorSettings } from './settings.ts';

const env = readEnv();
const logger = createLogger('operator', env.logLevel);

function loadKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  if (process.env['KUBECONFIG']) kc.loadFromDefault();
  else kc.loadFromCluster();
  return kc;
}

async function main(): Promise<void> {
  const settings = readOperatorSettings();
  const kubeConfig = loadKubeConfig();
  const nc = await connectNats(env.natsUrl, 'postern-operator');
  await ensureTopology(nc, env.replicas);
  const registry = createRegistry('operator');
  const operator = await startOperator({ kubeConfig, nc, logger, registry, settings });
  const telemetry = await startTelemetryServer({
    registry,
    host: env.metricsHost,
    port: env.metricsPort,
    ready: () => !nc.isClosed() && operator.ready(),
  });
  logger.info(
    {
      server: kubeConfig.getCurrentCluster()?.server,
      namespace: settings.watchNamespace || '*',
      identity: settings.identity,
      leaderElection: settings.leaderElection,
      pools: settings.pools.map((p) => p.name),
      metrics: `${env.metricsHost}:${telemetry.port}`,
    },
    'ready',
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    await operator.close();
    await nc.drain();
    await telemetry.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: Error) => {
  logger.fatal({ err: err.message }, 'operator failed to start');
  process.exit(1);
});
