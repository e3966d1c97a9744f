/**
 * Logging (pino, structured JSON) and metrics (prom-client) plus the small HTTP server every service exposes:
 * /metrics for Prometheus, /healthz (process alive) and /readyz (dependencies ready).
 */
import { createServer, type Server } from 'node:http';
import pino, { type Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';

export type { Logger };

/** Log lines are written in batches of at least this many bytes, or after LOG_FLUSH_MS, whichever comes first. */
const LOG_BATCH_BYTES = 4096;
const LOG_FLUSH_MS = 100;
/** Most a process buffers for stdout before it drops log lines (and says so once stdout takes lines again). */
const MAX_BUFFERED_LOG_BYTES = 16 * 1024 * 1024;

let stdout: ReturnType<typeof pino.destination> | undefined;

/**
 * One stdout destination per process, shared by its loggers. pino's default is already asynchronous (sonic-boom)
 * but writes whenever no write is in flight, so under load nearly every line still cost a write and its hop
 * through libuv's thread pool: 4 % of ingress and delivery CPU in the profile (docs/bench.md, "Hot path"). Here
 * lines collect until LOG_BATCH_BYTES (about a dozen lines) or LOG_FLUSH_MS, so a line shows at most 100 ms late
 * (`flushLogs()` writes at once, e.g. after the ready line). sonic-boom's periodic flush also writes when nothing
 * is buffered: an idle process makes 10 empty writes a second, which costs next to nothing.
 * What a crash can lose: pino flushes synchronously on process exit (also after an uncaught exception and on
 * process.exit), so only a process killed outright (SIGKILL, OOM kill, abort) loses the lines not yet written: at
 * most the last 100 ms or 4 KiB of them. Past MAX_BUFFERED_LOG_BYTES (stdout not read) lines are dropped instead of
 * growing memory without bound, and the count is logged when writing resumes.
 */
function stdoutDestination(): ReturnType<typeof pino.destination> {
  if (stdout) return stdout;
  const dest = pino.destination({
    dest: 1,
    sync: false,
    minLength: LOG_BATCH_BYTES,
    periodicFlush: LOG_FLUSH_MS,
    maxLength: MAX_BUFFERED_LOG_BYTES,
  });
  let dropped = 0;
  dest.on('drop', () => {
    dropped++;
  });
  dest.on('write', () => {
    if (dropped === 0) return;
    const n = dropped;
    dropped = 0;
    dest.write(
      `${JSON.stringify({ level: 40, time: Date.now(), pid: process.pid, msg: `${n} log lines dropped: stdout did not keep up` })}\n`,
    );
  });
  stdout = dest;
  return dest;
}

/** Writes the buffered log lines now (a line others wait for, like a service's ready line). */
export function flushLogs(): void {
  stdout?.flush();
}

export function createLogger(service: string, level = process.env['LOG_LEVEL'] ?? 'info'): Logger {
  return pino({ name: service, level, base: { service } }, stdoutDestination());
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
