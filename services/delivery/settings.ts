/** Delivery worker settings from the environment (local mode and the chart set these; see docs/delivery.md). */
import { hostname } from 'node:os';
import { readDnsServers } from '../common/dns-resolver.ts';
import { parseDuration } from '../common/durations.ts';

export interface DeliverySettings {
  /** Delivery pool this worker serves: consumes `mail.out.<pool>.>` and reports on `mail.result.<pool>`. */
  pool: string;
  /** Jobs in flight at once. */
  concurrency: number;
  /** DNS servers as `ip` or `ip:port`; empty = the system resolver. */
  dnsServers: string[];
  /** Remote SMTP port for MX delivery (RFC 5321 says 25; tests point it at a sink's port). */
  mxPort: number;
  /** EHLO/LHLO name. */
  hostname: string;
  /** Greeting, command and idle socket timeout for one SMTP session. */
  smtpTimeoutMs: number;
  /**
   * Allow MX answers that point at loopback/private addresses. Off in production: an MX record naming 127.0.0.1
   * or a cluster-internal address must not make us deliver into our own network. Tests and local mode set it.
   */
  allowLoopbackMx: boolean;
  /** JetStream ack wait of the job consumer: a dead worker's jobs come back after this. */
  ackWaitMs: number;
  /** Idle pooled SMTP connections are closed after this long. */
  idleTimeoutMs: number;
  /** A pooled connection is retired after this many messages. */
  maxMessagesPerConnection: number;
  /** Cap of concurrent connections to one destination (host:port[:tls] or MX domain). */
  maxConnectionsPerDestination: number;
  /**
   * PEM file of CA certificates trusted in addition to Node's bundled roots (and NODE_EXTRA_CA_CERTS) for `verify`,
   * MTA-STS (MX certificates and the policy host) and TLS-RPT HTTPS: a private PKI between your own MTAs.
   */
  tlsCaFile?: string | undefined;
  /**
   * Cluster-wide site limits and automatic backoff (docs/delivery.md "Sites"). `enabled: false` leaves only the
   * per-process caps above (POSTERN_SHAPING=off; a bench baseline, not a production setting).
   */
  shaping: {
    enabled: boolean;
    /** Connection leases expire this long after their holder stopped refreshing them (a dead process). */
    leaseTtlMs: number;
    /** Consecutive attempts that find a site down (refused, timed out, 4xx for every recipient) mark it dead. */
    deadAfter: number;
    /** How long a dead site's jobs are deferred without a connection before a probe tries it again. */
    deadMs: number;
    providerRulesFile?: string | undefined;
    responseRulesFile?: string | undefined;
  };
  /** TLS-RPT (RFC 8460): record sessions of mta-sts/dane routes and send aggregate reports. Off by default. */
  tlsRpt: {
    enabled: boolean;
    /** Report period (RFC 8460 reports are daily; shorter periods are for tests). */
    periodMs: number;
    organization: string;
    contact: string;
    submitter: string;
    from: string;
  };
}

function num(env: NodeJS.ProcessEnv, key: string, dflt: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0)
    throw new Error(`${key} must be a non-negative number, got ${JSON.stringify(raw)}`);
  return n;
}

export function readDeliverySettings(env: NodeJS.ProcessEnv = process.env): DeliverySettings {
  return {
    pool: env['POSTERN_POOL'] || 'default',
    concurrency: Math.max(1, num(env, 'POSTERN_DELIVERY_CONCURRENCY', 32)),
    dnsServers: readDnsServers(env),
    mxPort: num(env, 'POSTERN_MX_PORT', 25),
    hostname: env['POSTERN_HOSTNAME'] || hostname(),
    smtpTimeoutMs: num(env, 'POSTERN_SMTP_TIMEOUT_MS', 60_000),
    allowLoopbackMx: /^(1|true|yes)$/i.test(env['POSTERN_ALLOW_LOOPBACK_MX'] ?? ''),
    ackWaitMs: num(env, 'POSTERN_DELIVERY_ACK_WAIT_MS', 30_000),
    idleTimeoutMs: num(env, 'POSTERN_DELIVERY_IDLE_MS', 5_000),
    maxMessagesPerConnection: Math.max(1, num(env, 'POSTERN_DELIVERY_MAX_MESSAGES_PER_CONNECTION', 100)),
    maxConnectionsPerDestination: Math.max(1, num(env, 'POSTERN_DELIVERY_MAX_CONNECTIONS', 10)),
    tlsCaFile: env['POSTERN_TLS_CA_FILE'] || undefined,
    shaping: {
      enabled: !/^(0|false|no|off)$/i.test(env['POSTERN_SHAPING'] ?? ''),
      leaseTtlMs: Math.max(1000, num(env, 'POSTERN_SITE_LEASE_TTL_MS', 30_000)),
      deadAfter: Math.max(1, num(env, 'POSTERN_SITE_DEAD_AFTER', 5)),
      // Postfix's minimal_backoff_time (300 s) is how long its qmgr keeps a dead destination throttled.
      deadMs: Math.max(1000, num(env, 'POSTERN_SITE_DEAD_MS', 300_000)),
      providerRulesFile: env['POSTERN_PROVIDER_RULES_FILE'] || undefined,
      responseRulesFile: env['POSTERN_RESPONSE_RULES_FILE'] || undefined,
    },
    tlsRpt: tlsRptSettings(env, env['POSTERN_HOSTNAME'] || hostname()),
  };
}

function tlsRptSettings(env: NodeJS.ProcessEnv, host: string): DeliverySettings['tlsRpt'] {
  return {
    enabled: /^(1|true|yes)$/i.test(env['POSTERN_TLSRPT_ENABLED'] ?? ''),
    periodMs: parseDuration(env['POSTERN_TLSRPT_PERIOD'] || '1d'),
    organization: env['POSTERN_TLSRPT_ORGANIZATION'] || host,
    contact: env['POSTERN_TLSRPT_CONTACT'] || `postmaster@${host}`,
    submitter: env['POSTERN_TLSRPT_SUBMITTER'] || host,
    from: env['POSTERN_TLSRPT_FROM'] || `tlsrpt-noreply@${host}`,
  };
}
