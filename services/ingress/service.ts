/**
 * The ingress service: one SMTP server per configured listener, sharing the live config, the JetStream
 * submitter, the metrics and the cluster-wide per-client rate limiter.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import type { SMTPServer } from 'smtp-server';
import type { ConfigStore } from '../common/config/store.ts';
import { createDnsResolver } from '../common/dns-resolver.ts';
import { createSubmitter, directRoutingEnabled, openDirectRouting } from '../common/submit.ts';
import type { Logger } from '../common/telemetry.ts';
import { AuthLockout } from './auth-lockout.ts';
import { createClientRateLimiter } from './client-rate.ts';
import { ConnectionRate } from './connection-rate.ts';
import { ContentFilter } from './content-filter.ts';
import { Dnsbl } from './dnsbl.ts';
import { createIngressMetrics } from './metrics.ts';
import { createSenderAuth } from './sender-auth.ts';
import { ConnectionTable } from './session-limits.ts';
import { DEFAULT_LIMITS, type IngressSettings, type ListenerMode } from './settings.ts';
import { createSmtpListener } from './smtp-listener.ts';

export interface IngressOptions {
  nc: NatsConnection;
  /** Already started (initial KV content loaded). */
  config: ConfigStore;
  logger: Logger;
  registry: Registry;
  settings: IngressSettings;
}

export interface BoundListener {
  name: string;
  mode: ListenerMode;
  host: string;
  /** The bound port (useful when settings asked for port 0). */
  port: number;
}

export interface Ingress {
  listeners: BoundListener[];
  /** Stops accepting, lets open sessions finish (421 after 10 s), resolves when all are closed. */
  close(): Promise<void>;
}

function listen(server: SMTPServer, host: string, port: number, reusePort: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    // smtp-server passes listen() arguments through to net.Server; its typings omit the options-object form.
    const listenWithOptions = server.listen as unknown as (
      opts: object,
      cb: () => void,
    ) => ReturnType<SMTPServer['listen']>;
    const net = listenWithOptions.call(server, { port, host, reusePort }, () => {
      net.off('error', reject);
      resolve((net.address() as { port: number }).port);
    });
    net.once('error', reject);
  });
}

/** Starts every listener; rejects (closing those already started) if one cannot bind. */
export async function startIngress(opts: IngressOptions): Promise<Ingress> {
  const { nc, config, logger, registry, settings } = opts;
  const metrics = createIngressMetrics(registry);
  const rates = createClientRateLimiter(nc, {
    timeoutMs: settings.rateLimitTimeoutMs ?? 500,
    fallbacks: metrics.rateLimitFallbacks,
    logger,
  });
  const limits = { ...DEFAULT_LIMITS, ...settings.limits };
  const connections = new ConnectionTable(limits);
  let lastLockoutLog = 0;
  const lockout = new AuthLockout(nc, {
    perIp: limits.authFailuresPerIp,
    perUser: limits.authFailuresPerUser,
    windowSeconds: limits.authLockoutSeconds,
    timeoutMs: limits.authCounterTimeoutMs,
    onFallback: (err) => {
      metrics.authLockoutFallbacks.inc();
      if (Date.now() - lastLockoutLog < 30_000) return;
      lastLockoutLog = Date.now();
      logger.warn({ err: err.message }, 'AUTH failure counters unreachable: counting per replica meanwhile');
    },
  });
  const connectionRate = new ConnectionRate(rates, limits.connectionRateLimit, () => config.snapshot());
  const sweep = setInterval(() => {
    rates.sweep();
    lockout.sweep();
  }, 60_000);
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
  const senderAuth = createSenderAuth({
    authservId: settings.authservId ?? settings.hostname,
    resolver: createDnsResolver(settings.dnsServers ?? []),
    timeoutMs: settings.senderAuthTimeoutMs ?? 20_000,
    log: logger.child({ part: 'sender-auth' }),
    count: (action, dmarc) => metrics.senderAuth.inc({ action, dmarc }),
  });
  // One cache and one set of metrics for every listener; each listener decides whether it uses them.
  const dnsbl = settings.dnsbl ? new Dnsbl(settings.dnsbl, { registry, logger }) : undefined;
  const contentFilter = settings.contentFilter
    ? new ContentFilter(settings.contentFilter, { registry, logger })
    : undefined;
  const started: { server: SMTPServer; bound: BoundListener }[] = [];
  const close = async () => {
    clearInterval(sweep);
    await Promise.all(started.map(({ server }) => new Promise<void>((res) => server.close(() => res()))));
  };
  try {
    for (const l of settings.listeners) {
      const server = createSmtpListener(l, {
        settings,
        config,
        submitter,
        metrics,
        rates,
        connections,
        lockout,
        connectionRate,
        senderAuth,
        logger,
        ...(dnsbl && (l.dnsbl ?? l.mode === 'relay') ? { dnsbl } : {}),
        ...(contentFilter && (l.contentFilter ?? true) ? { contentFilter } : {}),
      });
      const port = await listen(server, l.host, l.port, settings.reusePort);
      started.push({ server, bound: { name: l.name, mode: l.mode, host: l.host, port } });
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { listeners: started.map((s) => s.bound), close };
}
