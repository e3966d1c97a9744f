/**
 * Logging (pino, structured JSON) and metrics (prom-client) plus the small HTTP server every service exposes:
 * /metrics for Prometheus, /healthz (process alive) and /readyz (dependencies ready).
 */
import { createServer, type Server } from 'node:http';
import pino, { type Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';

export type { Logger };

export function createLogger(service: string, level = process.env['LOG_LEVEL'] ?? 'info'): Logger {
  return pino({ name: service, level, base: { service } });
}

export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

export interface TelemetryServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** Serves /metrics, /healthz and /readyz; `ready()` decides readiness (e.g. NATS connected). */
export async function startTelemetryServer(opts: {
  registry: Registry;
  host: string;
  port: number;
  ready: () => boolean;
}): Promise<TelemetryServer> {
  const server = createServer(async (req, res) => {
    if (req.url === '/metrics') {
      res.setHeader('content-type', opts.registry.contentType);
      res.end(await opts.registry.metrics());
    } else if (req.url === '/healthz') {
      res.end('ok\n');
    } else if (req.url === '/readyz') {
      const ok = opts.ready();
      res.statusCode = ok ? 200 : 503;
      res.end(ok ? 'ready\n' : 'not ready\n');
    } else {
      res.statusCode = 404;
      res.end('not found\n');
    }
  });
  await new Promise<void>((res) => server.listen(opts.port, opts.host, res));
  const { port } = server.address() as { port: number };
  return { server, port, close: () => new Promise((res) => server.close(() => res())) };
}
