/**
 * The HTTP submission API service: one HTTP(S) listener for `POST /v1/messages` sharing the live config, the
 * JetStream submitter (the same one the SMTP ingress uses) and the cluster-wide per-client rate counters.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import type { ConfigStore } from '../common/config/store.ts';
import { createSubmitter, directRoutingEnabled, openDirectRouting } from '../common/submit.ts';
import type { Logger } from '../common/telemetry.ts';
import { createClientRateLimiter } from '../ingress/client-rate.ts';
import { createHandler } from './handler.ts';
import { createApiMetrics } from './metrics.ts';
import type { ApiSettings } from './settings.ts';

export interface ApiOptions {
  nc: NatsConnection;
  config: ConfigStore;
  logger: Logger;
  registry: Registry;
  settings: ApiSettings;
}

export interface Api {
  host: string;
  port: number;
  /** Stops accepting, lets requests in flight finish (their PubAck or 503), then resolves. */
  close(): Promise<void>;
}

export async function startApi(opts: ApiOptions): Promise<Api> {
  const { nc, config, logger, registry, settings } = opts;
  const metrics = createApiMetrics(registry);
  const rates = createClientRateLimiter(nc, {
    timeoutMs: settings.rateLimitTimeoutMs ?? 500,
    fallbacks: metrics.rateLimitFallbacks,
    logger,
  });
  const sweep = setInterval(() => rates.sweep(), 60_000);
  sweep.unref();
  const submitter = createSubmitter(nc, {
    timeoutMs: settings.publishTimeoutMs,
    inlineBodyMax: settings.inlineBodyMax,
    ...(settings.attachMax !== undefined ? { attachMax: settings.attachMax } : {}),
    ...((settings.directRouting ?? directRoutingEnabled())
      ? { direct: await openDirectRouting(nc, config) }
      : {}),
    onCleanupError: (msgId, err) => logger.warn({ msgId, err: err.message }, 'could not delete orphan body'),
  });
  const handler = createHandler({ settings, config, submitter, rates, metrics, logger });
  const onRequest = (req: Parameters<typeof handler>[0], res: Parameters<typeof handler>[1]) =>
    void handler(req, res);
  const server: Server = settings.tls
    ? createHttpsServer({ cert: settings.tls.cert, key: settings.tls.key }, onRequest)
    : createHttpServer(onRequest);
  // A slow client may not hold a request open forever (slowloris); a full-size upload fits well within this.
  server.requestTimeout = 300_000;
  server.headersTimeout = 30_000;
  server.on('clientError', (err, socket) => {
    logger.debug({ err: err.message }, 'HTTP client error');
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as { port: number };
  return {
    host: settings.host,
    port,
    close: async () => {
      clearInterval(sweep);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}
