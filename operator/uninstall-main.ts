/**
 * `node operator/uninstall-main.ts`: the chart's pre-delete hook (operator/uninstall.ts). Runs with the
 * operator's ServiceAccount and environment (WATCH_NAMESPACE, POD_NAMESPACE, LEADER_ELECTION,
 * LEADER_ELECTION_LEASE_NAME) plus OPERATOR_DEPLOYMENT; exits 0 when every finalizer is released.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { createLogger } from '../services/common/telemetry.ts';
import { describeError } from './runtime/api-errors.ts';
import { readOperatorSettings } from './settings.ts';
import { releaseFinalizers } from './uninstall.ts';

const logger = createLogger('operator-uninstall');
const kubeConfig = new KubeConfig();
if (process.env['KUBECONFIG']) kubeConfig.loadFromDefault();
else kubeConfig.loadFromCluster();
const settings = readOperatorSettings();
try {
  const released = await releaseFinalizers({
    kubeConfig,
    logger,
    watchNamespace: settings.watchNamespace,
    namespace: settings.leaseNamespace,
    deployment: process.env['OPERATOR_DEPLOYMENT'] || 'postern-operator',
    leaseName: settings.leaderElection ? settings.leaseName : '',
  });
  logger.info({ released }, 'Postern finalizers released');
} catch (err) {
  logger.fatal({ err: describeError(err) }, 'could not release Postern finalizers');
  process.exit(1);
}
