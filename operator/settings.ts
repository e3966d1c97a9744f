/**
 * Operator settings from the environment (the Helm chart sets these; see docs/operator.md):
 * KUBECONFIG (out of cluster; absent = in-cluster service account), WATCH_NAMESPACE (empty = all),
 * POD_NAME / POD_NAMESPACE (Lease identity and location), LEADER_ELECTION (default true),
 * LEADER_ELECTION_LEASE_NAME, LEASE_DURATION / RENEW_DEADLINE / RETRY_PERIOD (durations like "15s"),
 * POSTERN_POOLS (JSON, autoscaler/pools.ts), AUTOSCALE_INTERVAL (duration), RECONCILE_CONCURRENCY.
 * NATS_URL, POSTERN_METRICS_HOST/PORT and LOG_LEVEL come from services/common/env.ts.
 */
import { hostname } from 'node:os';
import { parseDuration } from '../services/common/durations.ts';
import { parsePools } from './autoscaler/pools.ts';
import { DEFAULT_OPERATOR_SETTINGS, type OperatorSettings } from './operator.ts';

export function readOperatorSettings(env: NodeJS.ProcessEnv = process.env): OperatorSettings {
  const d = DEFAULT_OPERATOR_SETTINGS;
  const ms = (name: string, fallback: number) => (env[name] ? parseDuration(env[name]) : fallback);
  const podNamespace = env['POD_NAMESPACE'] || d.leaseNamespace;
  const leaderElection = !/^(false|0|no)$/i.test(env['LEADER_ELECTION'] ?? 'true');
  const concurrency = Number(env['RECONCILE_CONCURRENCY'] ?? d.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error('RECONCILE_CONCURRENCY must be ≥ 1');
  const settings: OperatorSettings = {
    ...d,
    watchNamespace: env['WATCH_NAMESPACE'] ?? '',
    leaderElection,
    leaseNamespace: podNamespace,
    leaseName: env['LEADER_ELECTION_LEASE_NAME'] || d.leaseName,
    identity: env['POD_NAME'] || `${hostname()}-${process.pid}`,
    leaseDurationMs: ms('LEASE_DURATION', d.leaseDurationMs),
    renewDeadlineMs: ms('RENEW_DEADLINE', d.renewDeadlineMs),
    retryPeriodMs: ms('RETRY_PERIOD', d.retryPeriodMs),
    pools: parsePools(env['POSTERN_POOLS'], podNamespace),
    autoscaleIntervalMs: ms('AUTOSCALE_INTERVAL', d.autoscaleIntervalMs),
    concurrency,
  };
  if (settings.renewDeadlineMs >= settings.leaseDurationMs) {
    throw new Error('RENEW_DEADLINE must be shorter than LEASE_DURATION');
  }
  return settings;
}
