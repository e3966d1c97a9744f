/** Service settings from the environment (the chart and local mode set these). */
export interface ServiceEnv {
  natsUrl: string;
  /** JetStream stream replicas: 1 locally, 3 in the chart. */
  replicas: number;
  /** Telemetry HTTP (metrics, health) listen address. */
  metricsHost: string;
  metricsPort: number;
  logLevel: string;
}

export function readEnv(env: NodeJS.ProcessEnv = process.env): ServiceEnv {
  return {
    natsUrl: env['NATS_URL'] ?? 'nats://127.0.0.1:4222',
    replicas: Number(env['POSTERN_STREAM_REPLICAS'] ?? 1),
    metricsHost: env['POSTERN_METRICS_HOST'] ?? '127.0.0.1',
    metricsPort: Number(env['POSTERN_METRICS_PORT'] ?? 0),
    logLevel: env['LOG_LEVEL'] ?? 'info',
  };
}
