/**
 * The fixed metric contract (docs/chart.md, the common brief): every metric the dashboards and Prometheus rules
 * may query, with the module that must register it. Dashboards depend on these names; change them together.
 */
export const FIXED_METRICS: Readonly<Record<string, string>> = {
  postern_smtp_sessions_active: 'services/ingress/metrics.ts',
  postern_messages_received_total: 'services/common/submission-metrics.ts',
  postern_smtp_rejections_total: 'services/ingress/metrics.ts',
  postern_accept_duration_seconds: 'services/common/submission-metrics.ts',
  postern_queue_depth: 'services/queue/metrics.ts',
  postern_queue_oldest_age_seconds: 'services/queue/metrics.ts',
  postern_bounces_total: 'services/queue/metrics.ts',
  postern_dsn_sent_total: 'services/queue/metrics.ts',
  postern_messages_deferred_total: 'services/queue/metrics.ts',
  postern_recipients_final_total: 'services/common/recipient-metrics.ts',
  postern_site_deferrals_total: 'services/queue/metrics.ts',
  postern_delivery_attempts_total: 'services/delivery/metrics.ts',
  postern_delivery_duration_seconds: 'services/delivery/metrics.ts',
  postern_delivery_connections_active: 'services/delivery/metrics.ts',
  postern_operator_reconcile_total: 'operator/metrics.ts',
  postern_operator_reconcile_duration_seconds: 'operator/metrics.ts',
  postern_operator_workqueue_depth: 'operator/metrics.ts',
  postern_delivery_replicas: 'operator/metrics.ts',
  postern_delivery_lag: 'operator/metrics.ts',
  postern_webhook_deliveries_total: 'services/webhooks/metrics.ts',
  postern_webhook_duration_seconds: 'services/webhooks/metrics.ts',
  postern_webhook_pending: 'services/webhooks/metrics.ts',
};
