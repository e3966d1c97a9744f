/** The operator's Prometheus metrics (names fixed by docs/architecture.md; dashboards depend on them). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface OperatorMetrics {
  reconcileTotal: Counter<'kind' | 'result'>;
  reconcileDuration: Histogram<'kind'>;
  workqueueDepth: Gauge<'kind'>;
  deliveryReplicas: Gauge<'pool'>;
  deliveryLag: Gauge<'pool'>;
  isLeader: Gauge;
}

export function createOperatorMetrics(registry: Registry): OperatorMetrics {
  const registers = [registry];
  return {
    reconcileTotal: new Counter({
      name: 'postern_operator_reconcile_total',
      help: 'Reconciles by kind and result (success|error).',
      labelNames: ['kind', 'result'],
      registers,
    }),
    reconcileDuration: new Histogram({
      name: 'postern_operator_reconcile_duration_seconds',
      help: 'Time one reconcile took.',
      labelNames: ['kind'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    workqueueDepth: new Gauge({
      name: 'postern_operator_workqueue_depth',
      help: 'Keys waiting in the work queue.',
      labelNames: ['kind'],
      registers,
    }),
    deliveryReplicas: new Gauge({
      name: 'postern_delivery_replicas',
      help: 'Replicas the autoscaler set on the delivery pool Deployment.',
      labelNames: ['pool'],
      registers,
    }),
    deliveryLag: new Gauge({
      name: 'postern_delivery_lag',
      help: 'Lag (num_pending + num_ack_pending) of the pool consumer the autoscaler acted on.',
      labelNames: ['pool'],
      registers,
    }),
    isLeader: new Gauge({
      name: 'postern_operator_leader',
      help: '1 while this instance holds the leader Lease.',
      registers,
    }),
  };
}
