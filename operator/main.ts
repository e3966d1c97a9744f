/**
 * Process entry point: `node operator/main.ts`. Kubernetes credentials from KUBECONFIG (out of cluster) or
 * the in-cluster service account; everything else from the environment (settings.ts). Logs one
 * `{"msg":"ready"}` line; on SIGTERM/SIGINT stops reconciling, releases the Lease and exits 0.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { runServiceMain } from '../services/common/service-main.ts';
import { startOperator } from './operator.ts';
import { readOperatorSettings } from './settings.ts';

function loadKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  if (process.env['KUBECONFIG']) kc.loadFromDefault();
  else kc.loadFromCluster();
  return kc;
}

runServiceMain('operator', { watchConfig: false }, async ({ nc, logger, registry }) => {
  const settings = readOperatorSettings();
  const kubeConfig = loadKubeConfig();
  const operator = await startOperator({ kubeConfig, nc, logger, registry, settings });
  return {
    close: () => operator.close(),
    ready: () => operator.ready(),
    info: {
      server: kubeConfig.getCurrentCluster()?.server,
      namespace: settings.watchNamespace || '*',
      identity: settings.identity,
      leaderElection: settings.leaderElection,
      pools: settings.pools.map((p) => p.name),
    },
  };
});
